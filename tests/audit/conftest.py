"""Promotion fixtures for the exports' alias history and approvals (tests/audit/test_export.py)."""

from tests.promotions.conftest import dave, dave_client, erin, erin_client, ready  # noqa: F401
