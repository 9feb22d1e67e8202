"""Figures on the Residency page: rates as percentages, a scale factor as "1 in N", planned entries."""

from django import template
from django.utils.html import format_html

from ui.templatetags.humanize_bytes import bytes_

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


@register.filter
def residency_entry(entry: dict) -> str:
    """A planned adapter: its version's link (the ref on hover) and its size, rank and forecast demand.

    Built here rather than by an {% include %} per entry: a page of 20 workers shows over a thousand."""
    name = (
        format_html('<a href="{}" title="{}">{}</a>', entry["url"], entry["ref"], entry["label"])
        if entry.get("url")
        else format_html('<code title="{}">{}</code>', entry["ref"], entry["label"])
    )
    if not entry.get("bytes"):
        return name
    details = [bytes_(entry["bytes"])]
    if entry.get("rank"):
        details.append(f"r{entry['rank']}")
    if entry.get("demand") is not None:
        details.append(f"{float(entry['demand']):.3f} req/s")
    return format_html('{} <span class="sub">{}</span>', name, " · ".join(details))
