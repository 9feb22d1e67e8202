from django import template

register = template.Library()


@register.filter
def bytes_(value) -> str:
    """1536 -> '1.5 KiB'."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


register.filter("bytes", bytes_)


@register.filter
def count(value) -> str:
    """22713216 -> '22.7 M'."""
    if value is None:
        return "—"
    for threshold, suffix in ((1e9, " B"), (1e6, " M"), (1e3, " k")):
        if value >= threshold:
            return f"{value / threshold:.1f}{suffix}"
    return str(value)
