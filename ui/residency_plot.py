"""The Residency page's line plot, drawn server-side as SVG (no charting library, no script):
hourly GPU hit rate of the planner and of the engines' LRU on the last day's replayed traffic.

Colours and strokes come from app.css by class (the Content-Security-Policy allows no inline
style); every text is escaped. An hour without requests leaves a gap in both lines.
"""

from datetime import timedelta

from django.utils import timezone
from django.utils.html import escape

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 52, 40  # the legend sits above the plot
SERIES = (("planner", "Planner"), ("lru", "LRU (engine cache)"))


def _x(hour: float, hours: int) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (hour + 0.5) / hours


def _y(rate: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - rate)


def _path(rates: list, hours: int) -> str:
    """Line segments through the hours that have a rate; a None breaks the line."""
    commands, drawing = [], False
    for hour, rate in enumerate(rates):
        if rate is None:
            drawing = False
            continue
        commands.append(f"{'L' if drawing else 'M'}{_x(hour, hours):.1f},{_y(rate):.1f}")
        drawing = True
    return " ".join(commands)


def _points(rates: list, hours: int, css: str, label: str, origin) -> str:
    """A dot per hour (a lone hour between gaps shows too), with the figure as its tooltip."""
    dots = []
    for hour, rate in enumerate(rates):
        if rate is None:
            continue
        when = timezone.localtime(origin + timedelta(hours=hour)).strftime("%H:00")
        tip = escape(f"{label}, {when}: {rate:.1%}")
        dots.append(
            f'<circle class="dot {css}" cx="{_x(hour, hours):.1f}" cy="{_y(rate):.1f}" r="2.5"><title>{tip}</title></circle>'
        )
    return "".join(dots)


def _axes(hours: int, origin) -> str:
    parts = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" />')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')
    for hour in range(0, hours, 3):
        label = escape(timezone.localtime(origin + timedelta(hours=hour)).strftime("%H:00"))
        parts.append(
            f'<text class="tick" x="{_x(hour, hours):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{label}</text>'
        )
    zone = escape(timezone.get_current_timezone_name())
    parts.append(
        f'<text class="tick" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"hour of the day ({zone}), last hour still running</text>"
    )
    return "".join(parts)


def _legend(figures: dict) -> str:
    parts = []
    for row, (key, label) in enumerate(SERIES):
        rate = figures[key]["gpu_hit_rate"]
        text = escape(f"{label}: {rate:.1%} GPU hits over the day" if rate is not None else f"{label}: no requests")
        y = 12 + row * 18
        parts.append(f'<line class="series {key}" x1="{LEFT + 12}" y1="{y}" x2="{LEFT + 36}" y2="{y}" />')
        parts.append(f'<text class="legend" x="{LEFT + 42}" y="{y + 4}">{text}</text>')
    return "".join(parts)


def hit_rate_svg(figures: dict) -> str:
    """SVG markup for the replay figures of ui/residency.py (`hours`, `origin`, per policy `hourly`)."""
    hours, origin = figures["hours"], figures["origin"]
    lines = "".join(
        f'<path class="series {key}" d="{_path(figures[key]["hourly"], hours)}" />'
        + _points(figures[key]["hourly"], hours, key, label, origin)
        for key, label in SERIES
    )
    summary = escape(
        "GPU hit rate per hour: "
        + ", ".join(
            f"{label} {figures[key]['gpu_hit_rate']:.1%}" if figures[key]["gpu_hit_rate"] is not None else label
            for key, label in SERIES
        )
    )
    return (
        f'<svg class="hit-rate" role="img" aria-label="{summary}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{summary}</title>'
        f"{_axes(hours, origin)}{lines}{_legend(figures)}</svg>"
    )
