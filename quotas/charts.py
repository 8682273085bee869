"""The dashboard's charts, drawn as SVG here so that the page needs no JavaScript and loads
nothing from elsewhere.

The SVGs have a fixed viewBox and scale to the width of their container. The admin index gives
its content about 400 to 600 pixels at page widths of 800 to 1280, so the viewBox is about that
wide and its text stays readable. Colours come with names in a legend; text uses currentColor so
that the admin's dark theme applies. Agent ids and model names are user data: every label is
escaped before the SVG is marked safe.
"""

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from quotas.display import MONTHS, dollars_from_microcents, number, truncate
from quotas.models import MICROCENTS_PER_CENT

CHART_WIDTH = 540
CHAR_WIDTH = 6.8  # about the width of a digit at the charts' font size, for margins

# Okabe-Ito colours: told apart by most colour-blind readers; the legend names each one anyway.
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9")
OTHER_COLOUR = "#B8B8B8"


@dataclass(frozen=True)
class Frame:
    """Where the plot sits inside a chart's viewBox."""

    left: float
    right: float
    top: float
    bottom: float

    def x(self, index: int, count: int) -> float:
        return self.left + (self.right - self.left) * (index + 0.5) / count

    def y(self, value: int, maximum: int) -> float:
        return self.bottom - (self.bottom - self.top) * value / maximum


def nice_ticks(maximum: int, count: int = 4) -> list[int]:
    """Evenly spaced round axis values (steps of 1, 2 or 5 x 10^n), 0 to at least ``maximum``."""
    rough = max(1, -(-maximum // count))
    magnitude = 10 ** (len(str(rough)) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    return [step * i for i in range(count + 1)]


def day_labels(points: list[dict]) -> list[tuple[str, str]]:
    """Two lines under each bar: the day of the month, then the month under the first day and
    the first of a month ("Feb 25" read downwards) or "today" under today. Fourteen one-line
    dates would overlap under narrow bars."""
    last = len(points) - 1
    labels = []
    for index, point in enumerate(points):
        day = point["date"]
        below = MONTHS[day.month - 1] if index == 0 or day.day == 1 else ""
        labels.append((str(day.day), below or ("today" if index == last else "")))
    return labels


def _width(labels: list[str]) -> float:
    return CHAR_WIDTH * max(len(label) for label in labels)


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(label)}</text>'


def _svg(height: float, title: str, description: str, body: list[str]) -> SafeString:
    # Every caller escapes its labels (through _text or escape); title and description here.
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height:.0f}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="qd-svg" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12" '
        f'fill="currentColor"><title>{escape(title)}</title><desc>{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def history_chart_svg(history: dict) -> SafeString:
    """Stacked bars of tokens per day (top five agents and the rest) with the cost per day as
    a line on a second axis, a label under each day and a legend naming every colour."""
    points = history["days"]
    stacks = [(a["agent_id"], a["tokens"], colour) for a, colour in _coloured(history["agents"])]
    if any(history["other_agent_tokens"]):
        stacks.append(("other agents", history["other_agent_tokens"], OTHER_COLOUR))
    token_ticks = nice_ticks(max(p["tokens"] for p in points))
    tokens = [number(t) for t in token_ticks]
    cost_cents = nice_ticks(max(-(-p["cost_microcents"] // MICROCENTS_PER_CENT) for p in points))
    cost = [dollars_from_microcents(c * MICROCENTS_PER_CENT) for c in cost_cents]
    frame = Frame(
        left=_width(tokens) + 10, right=CHART_WIDTH - _width(cost) - 10, top=28, bottom=228
    )
    body = _axes(frame, points, tokens, cost)
    body += _bars(frame, points, stacks, token_ticks[-1])
    body += _cost_line(frame, points, cost_cents[-1] * MICROCENTS_PER_CENT)
    legend = [(name, colour, "bar") for name, _, colour in stacks]
    legend.append(("cost per day ($)", "currentColor", "line"))
    body += _legend(legend, left=frame.left, top=frame.bottom + 54)
    height = frame.bottom + 54 + 20 * -(-len(legend) // 3)
    title = f"Tokens and cost per day, {points[0]['label']} to {points[-1]['label']}"
    description = (
        f"Stacked bars: tokens per day by agent, the {len(history['agents'])} that used most "
        f"over these {len(points)} days each in its own colour. Line: cost per day in dollars. "
        f"Total: {number(sum(p['tokens'] for p in points))} tokens, "
        f"{dollars_from_microcents(sum(p['cost_microcents'] for p in points))}."
    )
    return _svg(height, title, description, body)


def _coloured(items: list) -> list:
    return list(zip(items, SERIES_COLOURS, strict=False))


def _axes(frame: Frame, points: list[dict], tokens: list[str], cost: list[str]) -> list[str]:
    body = ['<g class="qd-axes">']
    for index, (token_label, cost_label) in enumerate(zip(tokens, cost, strict=True)):
        y = frame.y(index, len(tokens) - 1)
        body.append(
            f'<line x1="{frame.left:.1f}" x2="{frame.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        body.append(_text(frame.left - 6, y + 4, token_label, "end"))
        body.append(_text(frame.right + 6, y + 4, cost_label, "start"))
    body.append(_text(frame.left - 6, frame.top - 14, "Tokens", "end", ' font-weight="bold"'))
    body.append(_text(frame.right + 6, frame.top - 14, "Cost", "start", ' font-weight="bold"'))
    for index, (day, below) in enumerate(day_labels(points)):
        x, bold = frame.x(index, len(points)), ' font-weight="bold"' * (index == len(points) - 1)
        body.append(_text(x, frame.bottom + 15, day, extra=bold))
        if below:
            body.append(_text(x, frame.bottom + 29, below, extra=bold))
    body.append("</g>")
    return body


def _bars(frame: Frame, points: list[dict], stacks: list, maximum: int) -> list[str]:
    width = (frame.right - frame.left) / len(points) * 0.7
    body = ['<g class="qd-bars">']
    for index, point in enumerate(points):
        base = 0
        for name, values, colour in stacks:
            value = values[index]
            if value <= 0:
                continue
            top, bottom = frame.y(base + value, maximum), frame.y(base, maximum)
            tip = f"{name}, {point['label']}: {number(value)} tokens"
            body.append(
                f'<rect x="{frame.x(index, len(points)) - width / 2:.1f}" y="{top:.1f}" '
                f'width="{width:.1f}" height="{bottom - top:.1f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            base += value
    body.append("</g>")
    return body


def _cost_line(frame: Frame, points: list[dict], maximum: int) -> list[str]:
    xy = [
        (frame.x(i, len(points)), frame.y(p["cost_microcents"], maximum))
        for i, p in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    body = [
        '<g class="qd-cost">',
        f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="2"/>',
    ]
    for (x, y), point in zip(xy, points, strict=True):
        tip = f"{point['label']}: {dollars_from_microcents(point['cost_microcents'])}"
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="currentColor" '
            f'style="stroke: var(--body-bg, #fff)"><title>{escape(tip)}</title></circle>'
        )
    body.append("</g>")
    return body


def _legend(entries: list[tuple[str, str, str]], *, left: float, top: float) -> list[str]:
    """Three entries a row; long names are shortened, the whole name is the tooltip."""
    column = (CHART_WIDTH - left) / 3
    body = ['<g class="qd-legend">']
    for index, (name, colour, shape) in enumerate(entries):
        x, y = left + (index % 3) * column, top + (index // 3) * 20
        if shape == "bar":
            mark = f'<rect x="{x:.1f}" y="{y - 9}" width="12" height="12" fill="{colour}"/>'
        else:
            mark = (
                f'<line x1="{x:.1f}" x2="{x + 12:.1f}" y1="{y - 3}" y2="{y - 3}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        label = _text(x + 17, y + 1, truncate(name, int((column - 24) // CHAR_WIDTH)), "start")
        body.append(f"<g>{mark}<title>{escape(name)}</title>{label}</g>")
    body.append("</g>")
    return body


def models_chart_svg(history: dict) -> SafeString:
    """One row of daily cost bars per top model, on a shared scale, with its 14-day total."""
    models, points = history["models"], history["days"]
    names = [truncate(m["model"], 26) for m in models] or [""]
    totals = [dollars_from_microcents(m["total"]) for m in models] or [""]
    frame = Frame(left=_width(names) + 10, right=CHART_WIDTH - _width(totals) - 10, top=8, bottom=0)
    row_height = 28
    height = frame.top + row_height * max(1, len(models)) + 22
    maximum = max([max(m["cost_microcents"]) for m in models] + [1])
    slot = (frame.right - frame.left) / len(points)
    body = []
    for row, (model, colour) in enumerate(_coloured(models)):
        base = frame.top + row_height * (row + 1) - 6
        body.append(_text(frame.left - 8, base - 3, names[row], "end"))
        body.append(_text(frame.right + 8, base - 3, totals[row], "start"))
        for index, (cost, point) in enumerate(zip(model["cost_microcents"], points, strict=True)):
            bar = (row_height - 8) * cost / maximum
            tip = f"{model['model']}, {point['label']}: {dollars_from_microcents(cost)}"
            body.append(
                f'<rect x="{frame.left + slot * (index + 0.15):.1f}" y="{base - bar:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{max(bar, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    for index in (0, len(points) - 1):
        body.append(_text(frame.x(index, len(points)), height - 6, points[index]["label"]))
    title = f"Cost per day of the top models, {points[0]['label']} to {points[-1]['label']}"
    description = "; ".join(f"{m['model']}: {dollars_from_microcents(m['total'])}" for m in models)
    return _svg(height, title, description or "No model cost in these days.", body)
