"""Signatures: namespace policies, offline verification, the registry's own key.

`policy` and `verify` import no Django, so `adapterctl verify` and third-party
checks can use them on a plain directory; `services` ties them to the database.
"""
