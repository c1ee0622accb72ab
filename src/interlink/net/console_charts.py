"""The operator console's charts and metrics history: SVG rendered on the server (the console
runs no script, its Content-Security-Policy allows none), every text in them escaped.

:func:`bar_chart` draws labelled totals, :func:`line_chart` a series over time;
:class:`MetricsHistory` keeps the samples the metrics page's lines are drawn from (in memory,
bounded); :func:`sum_by` and :func:`total` read the Prometheus samples the page is given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from markupsafe import Markup

Samples = Mapping[str, list[tuple[dict[str, str], float]]]


def bar_chart(title: str, items: list[tuple[str, float]], *, unit: str = "") -> Markup:
    """A horizontal bar chart with its numbers written beside the bars (and in ``<title>`` and
    ``<desc>`` for assistive technology)."""
    width, bar_h, gap, label_w = 520, 18, 8, 170
    height = max(1, len(items)) * (bar_h + gap) + gap
    top = max((v for _, v in items), default=0) or 1
    desc = "; ".join(f"{label}: {value:g}{unit}" for label, value in items) or "no data yet"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-labelledby="t-{_slug(title)} d-{_slug(title)}">',
        f'<title id="t-{_slug(title)}">{_esc(title)}</title>',
        f'<desc id="d-{_slug(title)}">{_esc(desc)}</desc>',
    ]
    if not items:
        parts.append(f'<text x="0" y="{bar_h}" class="empty">no data yet</text>')
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(1.0, (width - label_w - 70) * value / top)
        parts.append(f'<text x="0" y="{y + bar_h - 4}" class="label">{_esc(label[:24])}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" class="bar"></rect>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 4}" class="value">'
            f"{value:g}{_esc(unit)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)


def line_chart(title: str, points: list[tuple[float, float]]) -> Markup:
    """A line over time (oldest left), the last value written at its end."""
    width, height, pad = 520, 120, 24
    desc = f"{len(points)} samples; last {points[-1][1]:g}" if points else "no samples yet"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="t-{_slug(title)} d-{_slug(title)}">',
        f'<title id="t-{_slug(title)}">{_esc(title)}</title>',
        f'<desc id="d-{_slug(title)}">{_esc(desc)}</desc>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'class="axis"></line>',
    ]
    if len(points) >= 2:
        t0, t1 = points[0][0], points[-1][0]
        top = max(v for _, v in points) or 1
        span = (t1 - t0) or 1
        coords = " ".join(
            f"{pad + (width - 3 * pad) * (t - t0) / span:.1f},"
            f"{height - pad - (height - 2 * pad) * v / top:.1f}"
            for t, v in points
        )
        parts.append(f'<polyline points="{coords}" class="line"></polyline>')
    if points:
        parts.append(
            f'<text x="{width - 2 * pad + 4}" y="{pad}" class="value">{points[-1][1]:g}</text>'
        )
    else:
        parts.append(f'<text x="{pad}" y="{pad}" class="empty">no samples yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it is escaped above)


def _esc(text: str) -> str:
    return str(Markup.escape(text))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def sum_by(samples: Samples, name: str, by: str, **where: str) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for labels, value in samples.get(name, []):
        if all(labels.get(k) == v for k, v in where.items()):
            key = labels.get(by, "")
            totals[key] = totals.get(key, 0.0) + value
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


@dataclass
class MetricsHistory:
    """Samples of a few totals, taken when the metrics page is viewed (one per ``spacing``
    seconds at most: a view sooner updates the newest), the newest ``size`` kept."""

    size: int
    spacing: float = 2.0
    points: deque[tuple[float, dict[str, float]]] = field(default_factory=deque)

    def add(self, now: float, values: dict[str, float]) -> None:
        if self.points and now - self.points[-1][0] < self.spacing:
            self.points[-1] = (self.points[-1][0], values)  # the newest values, same sample
            return
        self.points.append((now, values))
        while len(self.points) > self.size:
            self.points.popleft()

    def series(self, key: str) -> list[tuple[float, float]]:
        return [(t, v.get(key, 0.0)) for t, v in self.points]
