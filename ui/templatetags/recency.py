"""Timestamps that say their time zone, and "12 s ago" with the exact time on hover.

Rendered on the server: the pages that show recency poll, so the text stays fresh.
"""

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()

EXACT = "%Y-%m-%d %H:%M:%S %Z"


@register.filter
def stamp(value) -> str:
    """'2026-11-26 06:19 UTC': the current time zone's local time, named."""
    if value is None:
        return "—"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


def ago_text(value) -> str:
    """'12 s ago' under a minute (timesince would say '0 minutes'), else Django's timesince."""
    now = timezone.now()
    seconds = (now - value).total_seconds()
    if seconds < 60:
        return f"{max(int(seconds), 0)} s ago"
    return f"{timesince(value, now, depth=1)} ago"


@register.filter
def ago(value):
    """A <time> element: relative text, the exact time with its zone in `title`, ISO in `datetime`."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', local.isoformat(), local.strftime(EXACT), ago_text(value)
    )
