"""The dashboard's charts, drawn as SVG here so that the page needs no JavaScript and loads
nothing from elsewhere.

The SVGs have a fixed viewBox and scale to the width of their container, from about 290 px
(a 320 px phone) to the 560 px the dashboard's CSS allows them. The viewBox is narrow and its
font large for it, so that at 400 px wide the text still renders at about 10 px; day labels
are thinned out (every 2nd, 3rd, 7th... day, counted back from today) wherever more days than
fit are drawn. Colours come with names in a legend and reach 3:1 against white; stacked
segments are kept apart by a gap, so that touching colours never need to contrast with each
other. Text uses currentColor so that the admin's dark theme applies. Agent ids and model
names are user data: every label is escaped before the SVG is marked safe. Every figure is
also in the table the dashboard shows under each chart (dashboard.history_numbers).
"""

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from quotas.display import MONTHS, dollars_from_microcents, number, truncate
from quotas.models import MICROCENTS_PER_CENT

CHART_WIDTH = 460
FONT_SIZE = 13
CHAR_WIDTH = 7.4  # about the width of a digit at FONT_SIZE, for margins and overlaps
LINE = 16  # from one line of labels to the next
# A day's number needs two digits and a digit's space on either side shared with the next.
NUMBER_WIDTH = 3 * CHAR_WIDTH
# Every how many days a day is numbered when not every day fits: days, weeks, fortnights.
LABEL_STEPS = (1, 2, 3, 7, 14, 28)
# Between stacked segments: the page's background shows, so no two colours touch.
GAP = 2

# Okabe-Ito's blue, vermillion, bluish green and reddish purple, and Tol's wine: told apart by
# most colour-blind readers, each at least 3:1 against white (tests/test_dashboard.py); the
# legend names each one anyway.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#882255")
OTHER_COLOUR = "#767676"


@dataclass(frozen=True)
class Frame:
    """Where the plot sits inside a chart's viewBox."""

    left: float
    right: float
    top: float
    bottom: float

    def x(self, index: int, count: int) -> float:
        return self.left + self.slot(count) * (index + 0.5)

    def y(self, value: int, maximum: int) -> float:
        return self.bottom - (self.bottom - self.top) * value / maximum

    def slot(self, count: int) -> float:
        """The width each of ``count`` days has."""
        return (self.right - self.left) / count


def nice_ticks(maximum: int, count: int = 4) -> list[int]:
    """Evenly spaced round axis values (steps of 1, 2 or 5 x 10^n), 0 to at least ``maximum``."""
    rough = max(1, -(-maximum // count))
    magnitude = 10 ** (len(str(rough)) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    return [step * i for i in range(count + 1)]


def day_labels(points: list[dict], slot: float) -> list[tuple[str, str]]:
    """Two lines under each bar ``slot`` wide: the day of the month, then the month under the
    first numbered day and where a month starts ("Feb" under "25", read downwards), "today"
    under today; ('', '') under a day left unnumbered.

    Only every 2nd, 3rd, 7th... day is numbered when the numbers would not fit (30 or 90 days),
    counted back from today; a month name that would touch the next label of its line is left
    out, the later label being the one a reader looks for.
    """
    step = next((s for s in LABEL_STEPS if s * slot >= NUMBER_WIDTH), LABEL_STEPS[-1])
    last = len(points) - 1
    numbered = [index for index in range(len(points)) if (last - index) % step == 0]
    below, month = {}, None
    for index in numbered:
        if points[index]["date"].month != month:
            month = points[index]["date"].month
            below[index] = MONTHS[month - 1]
    below[last] = "today"
    below = _apart(below, slot)
    return [
        (str(point["date"].day) if index in numbered else "", below.get(index, ""))
        for index, point in enumerate(points)
    ]


def _apart(labels: dict[int, str], slot: float) -> dict[int, str]:
    """The labels (by day index) that do not overlap a later one, keeping the later."""
    kept: dict[int, str] = {}
    for index in sorted(labels, reverse=True):
        text = labels[index]
        if kept:
            nearest = min(kept)
            room = (len(text) + len(kept[nearest]) + 2) / 2 * CHAR_WIDTH
            if (nearest - index) * slot < room:
                continue
        kept[index] = text
    return kept


def _width(labels: list[str]) -> float:
    return CHAR_WIDTH * max(len(label) for label in labels)


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(label)}</text>'


def _svg(height: float, title: str, description: str, body: list[str]) -> SafeString:
    # Every caller escapes its labels (through _text or escape); title and description here.
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height:.0f}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="qd-svg" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        f'font-size="{FONT_SIZE}" fill="currentColor">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        + "".join(body)
        + "</svg>"
    )


def history_chart_svg(history: dict) -> SafeString:
    """Stacked bars of tokens per day (top five agents and the rest) with the cost per day as
    a line on a second axis, labels under the days and a legend naming every colour."""
    points = history["days"]
    stacks = [(a["agent_id"], a["tokens"], colour) for a, colour in _coloured(history["agents"])]
    if any(history["other_agent_tokens"]):
        stacks.append(("other agents", history["other_agent_tokens"], OTHER_COLOUR))
    token_ticks = nice_ticks(max(p["tokens"] for p in points))
    tokens = [number(t) for t in token_ticks]
    cost_cents = nice_ticks(max(-(-p["cost_microcents"] // MICROCENTS_PER_CENT) for p in points))
    cost = [dollars_from_microcents(c * MICROCENTS_PER_CENT) for c in cost_cents]
    frame = Frame(
        left=_width(tokens) + 10, right=CHART_WIDTH - _width(cost) - 10, top=30, bottom=230
    )
    body = _axes(frame, points, tokens, cost)
    body += _bars(frame, points, stacks, token_ticks[-1])
    body += _cost_line(frame, points, cost_cents[-1] * MICROCENTS_PER_CENT)
    legend = [(name, colour, "bar") for name, _, colour in stacks]
    legend.append(("cost per day", "currentColor", "line"))
    legend_top = frame.bottom + 2 * LINE + 26
    body += _legend(legend, left=frame.left, top=legend_top)
    height = legend_top + 22 * -(-len(legend) // 3)
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
        body.append(_text(frame.left - 6, y + 4.5, token_label, "end"))
        body.append(_text(frame.right + 6, y + 4.5, cost_label, "start"))
    body.append(_text(frame.left - 6, frame.top - 16, "Tokens", "end", ' font-weight="bold"'))
    body.append(_text(frame.right + 6, frame.top - 16, "Cost", "start", ' font-weight="bold"'))
    last = len(points) - 1
    labels = day_labels(points, frame.slot(len(points)))
    for index, lines in enumerate(labels):
        x = frame.x(index, len(points))
        extra = ' class="qd-day"' + ' font-weight="bold"' * (index == last)
        for line, text in enumerate(lines, start=1):
            if text:
                body.append(_text(x, frame.bottom + line * LINE + 1, text, extra=extra))
    body.append("</g>")
    return body


def _bars(frame: Frame, points: list[dict], stacks: list, maximum: int) -> list[str]:
    width = frame.slot(len(points)) * 0.7
    body = ['<g class="qd-bars">']
    for index, point in enumerate(points):
        base = 0
        for name, values, colour in stacks:
            value = values[index]
            if value <= 0:
                continue
            top, bottom = frame.y(base + value, maximum), frame.y(base, maximum)
            if base:
                bottom -= GAP  # the gap above the segment below
            tip = f"{name}, {point['label']}: {number(value)} tokens"
            body.append(
                f'<rect x="{frame.x(index, len(points)) - width / 2:.1f}" y="{top:.1f}" '
                f'width="{width:.1f}" height="{max(bottom - top, 0.5):.1f}" fill="{colour}">'
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
    radius = min(3.5, frame.slot(len(points)) / 2.5)
    body = [
        '<g class="qd-cost">',
        f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="2"/>',
    ]
    for (x, y), point in zip(xy, points, strict=True):
        tip = f"{point['label']}: {dollars_from_microcents(point['cost_microcents'])}"
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="currentColor" '
            f'style="stroke: var(--body-bg, #fff)"><title>{escape(tip)}</title></circle>'
        )
    body.append("</g>")
    return body


def _legend(entries: list[tuple[str, str, str]], *, left: float, top: float) -> list[str]:
    """Three entries a row; long names are shortened, the whole name is the tooltip."""
    column = (CHART_WIDTH - left) / 3
    body = ['<g class="qd-legend">']
    for index, (name, colour, shape) in enumerate(entries):
        x, y = left + (index % 3) * column, top + (index // 3) * 22
        if shape == "bar":
            mark = f'<rect x="{x:.1f}" y="{y - 10}" width="13" height="13" fill="{colour}"/>'
        else:
            mark = (
                f'<line x1="{x:.1f}" x2="{x + 13:.1f}" y1="{y - 3.5}" y2="{y - 3.5}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        label = _text(x + 18, y + 1, truncate(name, int((column - 24) // CHAR_WIDTH)), "start")
        body.append(f"<g>{mark}<title>{escape(name)}</title>{label}</g>")
    body.append("</g>")
    return body


def models_chart_svg(history: dict) -> SafeString:
    """One row of daily cost bars per top model, on a shared scale, with its total."""
    models, points = history["models"], history["days"]
    names = [truncate(m["model"], 16) for m in models] or [""]
    totals = [dollars_from_microcents(m["total"]) for m in models] or [""]
    frame = Frame(left=_width(names) + 10, right=CHART_WIDTH - _width(totals) - 10, top=8, bottom=0)
    row_height = 30
    height = frame.top + row_height * max(1, len(models)) + LINE + 8
    maximum = max([max(m["cost_microcents"]) for m in models] + [1])
    slot = frame.slot(len(points))
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
    body.append(_text(frame.left, height - 6, points[0]["label"], "start"))
    body.append(_text(frame.right, height - 6, points[-1]["label"], "end"))
    title = f"Cost per day of the top models, {points[0]['label']} to {points[-1]['label']}"
    description = "; ".join(f"{m['model']}: {dollars_from_microcents(m['total'])}" for m in models)
    return _svg(height, title, description or "No model cost in these days.", body)
