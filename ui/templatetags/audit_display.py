"""How the Audit pages show an event's time and values: to the second, with the zone named."""

import json

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

SECOND = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def exact(value):
    """A <time> element: '2026-11-26 06:19:03 UTC' in the current time zone, ISO 8601 in `datetime`.
    (Audit times need the second the other pages' `stamp` leaves out.)"""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html('<time datetime="{}">{}</time>', local.isoformat(), local.strftime(SECOND))


@register.filter
def summary(event, limit: int = 120) -> str:
    """One line about what an event changed: its reason, else its `after` as compact JSON (cut)."""
    text = event.reason or ("" if event.after is None else json.dumps(event.after, ensure_ascii=False, sort_keys=True))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
