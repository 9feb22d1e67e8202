"""Figures on the Residency page: rates as percentages, a scale factor as "1 in N"."""

from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    """0.8734 -> '87.3%'; None -> '—'."""
    if value is None:
        return "—"
    return f"{float(value):.1%}"


@register.filter
def inverse(value):
    """1 / value (a scale of 0.25 is "1 in 4"); None for 0 or None."""
    return 1.0 / float(value) if value else None
