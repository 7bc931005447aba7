"""Hand-written inline SVG charts for report.html: no scripts, no fonts, no URLs.

Each function takes plain numbers and returns one <svg> element as text, sized
by a viewBox so it scales with the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"
INK, GRID, MUTED = "#1f2933", "#d9dee3", "#66727f"
GOOD, BAD, ACCENT = "#2f9e44", "#d9480f", "#1971c2"
PALETTE = ("#1971c2", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599")


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{escape(label)}" style="{FONT}">'
            f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def _text(x: float, y: float, s: str, size: int = 12, anchor: str = "start", fill: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(s)}</text>')


def _nice_max(value: float) -> float:
    """A round axis maximum at or above value (1, 2, 2.5 or 5 times a power of ten); 1 for a value
    that is not a positive finite number (an infinite one would never end the search)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


# tick count per nice maximum's leading digits, so tick labels stay round (0.5 steps, not 0.625)
_TICKS = {1: 5, 1.5: 3, 2: 4, 2.5: 5, 3: 3, 4: 4, 5: 5, 6: 3, 8: 4, 10: 5}


def ticks(vmax: float) -> list[float]:
    """Round tick values from 0 to vmax (a _nice_max result)."""
    power = 1.0
    while power * 10 <= vmax:
        power *= 10
    while power > vmax:
        power /= 10
    lead = round(vmax / power, 3)
    n = _TICKS.get(lead if lead != int(lead) else int(lead), 4)
    return [vmax * i / n for i in range(n + 1)]


def human_bytes(n: float) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


def bar_chart(title: str, bars: list[tuple[str, float]], expected: dict[str, float] | None = None,
              unit: str = "", width: int = 640) -> str:
    """Horizontal bars, one per label; a tick marks each bar's expected value when given."""
    expected = expected or {}
    row, left, top = 30, 150, 34
    height = top + row * len(bars) + 34
    vmax = _nice_max(max([v for _, v in bars] + list(expected.values()) + [0.0]) * 1.1)
    plot = width - left - 70
    body = [_text(0, 16, title, 14, weight="600")]
    for v in ticks(vmax):
        x = left + plot * v / vmax
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 28}" stroke="{GRID}"/>')
        body.append(_text(x, height - 12, f"{round(v, 6):g}", 11, "middle", MUTED))
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        want = expected.get(label)
        color = ACCENT if want is None else (GOOD if abs(value - want) < 1e-9 else BAD)
        w = max(plot * value / vmax, 1.0)
        body.append(_text(left - 8, y + 15, label, 12, "end"))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 10}" rx="2" fill="{color}"/>')
        body.append(_text(left + w + 6, y + 15, f"{value:g}{unit}", 12, weight="600"))
        if want is not None:
            wx = left + plot * want / vmax
            body.append(f'<line class="expected" x1="{wx:.1f}" y1="{y}" x2="{wx:.1f}" y2="{y + row - 4}" '
                        f'stroke="{INK}" stroke-width="2" stroke-dasharray="3 2"/>')
    if expected:
        body.append(_text(width - 4, 16, "dashed: expected", 11, "end", MUTED))
    return _svg(width, height, body, title)


@dataclass
class TimelineRow:
    """One transaction: marks at microseconds after it was sent."""

    label: str
    total_us: float
    marks: list[tuple[str, float]] = field(default_factory=list)  # (kind, us after send)


TIMELINE_KINDS = ("send", "alloc_buf", "copy", "receive", "reply", "reply received")
TIMELINE_COLORS = ("#1c7ed6", "#f59f00", "#2f9e44", "#ae3ec9", "#e03131", "#495057")


def timeline_chart(title: str, rows: list[TimelineRow], width: int = 900) -> str:
    """Per-transaction lanes on one shared time axis (microseconds after send)."""
    row, left, top = 34, 150, 52
    height = top + row * len(rows) + 36
    plot = width - left - 90
    tmax = _nice_max(max((r.total_us for r in rows), default=1.0))
    colors = dict(zip(TIMELINE_KINDS, TIMELINE_COLORS))
    body = [_text(0, 16, title, 14, weight="600")]
    x = 0.0
    for kind in TIMELINE_KINDS:
        body.append(f'<circle cx="{x + 6:.1f}" cy="34" r="5" fill="{colors[kind]}"/>')
        body.append(_text(x + 15, 38, kind, 11, fill=MUTED))
        x += 24 + 7 * len(kind)
    for v in ticks(tmax):
        gx = left + plot * v / tmax
        body.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - 30}" stroke="{GRID}"/>')
        body.append(_text(gx, height - 14, f"{round(v / 1000, 6):g} ms", 11, "middle", MUTED))
    for i, r in enumerate(rows):
        y = top + i * row + row / 2
        body.append(_text(left - 8, y + 4, r.label, 12, "end"))
        end = left + plot * r.total_us / tmax
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{end:.1f}" y2="{y:.1f}" stroke="{MUTED}" stroke-width="2"/>')
        body.append(_text(end + 8, y + 4, f"{r.total_us / 1000:.2f} ms", 11, fill=MUTED))
        for kind, us in r.marks:
            mx = left + plot * us / tmax
            body.append(f'<circle class="mark" cx="{mx:.1f}" cy="{y:.1f}" r="5" fill="{colors.get(kind, INK)}" '
                        f'stroke="white" stroke-width="1"><title>{escape(kind)} +{us:.0f} us</title></circle>')
    return _svg(width, height, body, title)


@dataclass
class StepSeries:
    label: str
    points: list[tuple[float, float]]  # (ms since case start, bytes), stepwise


def step_chart(title: str, series: list[StepSeries], limit: float | None = None, limit_label: str = "",
               width: int = 900) -> str:
    """Step lines of bytes over time, with an optional limit line (e.g. the mapped area)."""
    height, left, top, bottom = 260, 80, 44, 34
    plot_w, plot_h = width - left - 20, height - top - bottom
    tmax = max((p[0] for s in series for p in s.points), default=1.0) or 1.0
    peak = max((p[1] for s in series for p in s.points), default=0.0)
    top_value = max(peak * 1.15, 1.0)
    if limit is not None and limit <= top_value * 4:  # show the limit when it is on a comparable scale
        top_value = max(limit * 1.05, top_value)
    unit = next(u for u in (1 << 20, 1 << 10, 1) if top_value >= u)  # round ticks in MiB, KiB or bytes
    ymax = _nice_max(top_value / unit) * unit
    body = [_text(0, 16, title, 14, weight="600")]

    def px(t: float) -> float:
        return left + plot_w * t / tmax

    def py(v: float) -> float:
        return top + plot_h * (1 - v / ymax)

    for v in (t * unit for t in ticks(ymax / unit)):
        body.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + plot_w}" y2="{py(v):.1f}" stroke="{GRID}"/>')
        body.append(_text(left - 6, py(v) + 4, human_bytes(v), 11, "end", MUTED))
    for i in range(6):
        t = tmax * i / 5
        body.append(_text(px(t), height - 12, f"{t:.0f} ms", 11, "middle", MUTED))
    if limit is not None and limit <= ymax:
        body.append(f'<line class="limit" x1="{left}" y1="{py(limit):.1f}" x2="{left + plot_w}" y2="{py(limit):.1f}" '
                    f'stroke="{BAD}" stroke-dasharray="6 4"/>')
        body.append(_text(left + plot_w, py(limit) - 5, limit_label or human_bytes(limit), 11, "end", BAD))
    x = left
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        if not s.points:
            continue
        d = [f"M{px(s.points[0][0]):.1f},{py(0):.1f}"]
        prev = 0.0
        for t, v in s.points:
            d.append(f"L{px(t):.1f},{py(prev):.1f}L{px(t):.1f},{py(v):.1f}")
            prev = v
        d.append(f"L{px(tmax):.1f},{py(prev):.1f}")
        body.append(f'<path class="series" d="{"".join(d)}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.append(f'<rect x="{x}" y="26" width="12" height="4" fill="{color}"/>')
        body.append(_text(x + 16, 32, s.label, 11, fill=MUTED))
        x += 30 + 7 * len(s.label)
    return _svg(width, height, body, title)
