"""Self-contained HTML pages for the dataset and training-job reports: inline CSS, a few lines of vanilla
JavaScript that sort tables by a clicked header, and charts as inline SVG of a fixed size whatever the number
of values. No network, no CDN, no Beam or TensorFlow: the builder (pipelines.dataset_page) and the trainer
(trainer.job_page) both use it.

Every string from the data goes through `esc` (html.escape); callers pass plain text, never markup, except
where a function says it takes HTML.
"""
from __future__ import annotations

import base64
import html
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

CHART_W, CHART_H = 560, 260  # SVG viewBox; the CSS scales it down to the viewport
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 14, 28, 40
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;padding:0 16px 40px;
max-width:1200px;color:#222;overflow-wrap:anywhere}
h1{font-size:22px;margin:18px 0 6px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.figures{display:flex;flex-wrap:wrap;gap:8px}.figure{background:#f4f6f8;border-radius:6px;padding:6px 12px}
.figure b{display:block;font-size:18px}.figure span{color:#555;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg,.charts img{max-width:100%;height:auto}
svg{font:11px sans-serif}svg .axis{stroke:#888}svg text{fill:#333}
.scroll{max-width:100%;overflow-x:auto}.tall{max-height:70vh;overflow-y:auto}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top;overflow-wrap:break-word}td{max-width:28em}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;background:#f4f6f8;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
audio{height:28px;width:220px;max-width:100%}.note{color:#555;font-size:12px}.bad{color:#b00020}
img.plot{max-width:100%;height:auto}
"""

# sorts a table.sortable's body by the clicked header: numbers by data-v (class num), text otherwise
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  var heads=t.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,i){
    th.addEventListener('click',function(){
      var asc=th.getAttribute('aria-sort')!=='ascending', num=th.classList.contains('num');
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      var body=t.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      function key(r){var c=r.cells[i],v=c.getAttribute('data-v');if(v===null)v=c.textContent;
        if(!num)return v;var x=parseFloat(v);return isNaN(x)?-Infinity:x;}
      rows.sort(function(a,b){var x=key(a),y=key(b),c=x<y?-1:x>y?1:0;return asc?c:-c;});
      var f=document.createDocumentFragment();rows.forEach(function(r){f.appendChild(r);});body.appendChild(f);
    });
  });
});
"""

Cell = Union[str, int, float, None, Tuple[object, str]]  # a value, or (sort value, HTML to show)


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def document(title: str, body: Sequence[str]) -> str:
    """A whole page: `body` is a list of HTML fragments (already escaped)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n"
            + "\n".join(body) + f"\n<script>{SORT_JS}</script>\n</body></html>\n")


def section(heading: str, *parts: str) -> str:
    return f"<h2>{esc(heading)}</h2>\n" + "\n".join(parts)


def paragraph(text: str, cls: str = "note") -> str:
    return f"<p class=\"{cls}\">{esc(text)}</p>"


def figures(items: Mapping[str, object]) -> str:
    """Headline numbers as cards: {label: value}."""
    cards = "".join(f"<div class=\"figure\"><b>{esc(v)}</b><span>{esc(k)}</span></div>" for k, v in items.items())
    return f"<div class=\"figures\">{cards}</div>"


def fmt(x, digits: int = 1) -> str:
    """A number for a cell: integers as they are, floats rounded, None/NaN as an empty string."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def number(x, digits: int) -> Tuple[str, str]:
    """A numeric cell shown with a fixed number of decimals (sorting by its full value)."""
    shown = fmt(x, digits)
    return ("" if x is None else str(x)), esc(shown)


def table(columns: Sequence[Tuple[str, bool]], rows: Iterable[Sequence[Cell]], table_id: str,
          sortable: bool = True, tall: bool = False) -> str:
    """A table; `columns` are (heading, numeric). A cell is a value (escaped; numbers sort numerically in
    numeric columns) or (sort value, HTML) for a cell whose content is markup the caller built safely."""
    num_cls = " class=\"num\""
    head = "".join(f"<th{num_cls if num else ''} scope=\"col\">{esc(name)}</th>" for name, num in columns)
    out = []
    for row in rows:
        cells = []
        for (name, num), cell in zip(columns, row):
            cls = num_cls if num else ""
            if isinstance(cell, tuple):
                sort, shown = cell
                cells.append(f"<td{cls} data-v=\"{esc(sort)}\">{shown}</td>")
            elif num:
                value = fmt(cell, 3 if isinstance(cell, float) and abs(cell) < 10 else 1)
                cells.append(f"<td{cls} data-v=\"{esc(value)}\">{esc(value)}</td>")
            else:
                cells.append(f"<td>{esc(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    classes = "sortable" if sortable else "plain"
    wrap = "scroll tall" if tall else "scroll"
    return (f"<div class=\"{wrap}\"><table id=\"{esc(table_id)}\" class=\"{classes}\"><thead><tr>{head}</tr></thead>"
            "<tbody>\n" + "\n".join(out) + "\n</tbody></table></div>")


def png_img(data: bytes, alt: str) -> str:
    """A PNG inlined as a data: URI (the page stays one file)."""
    return f"<img class=\"plot\" alt=\"{esc(alt)}\" src=\"data:image/png;base64,{base64.b64encode(data).decode()}\">"


# ---------------------------------------------------------------------------------------------- SVG charts
def _ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2g}"


class _Frame:
    """Axes of a chart: data coordinates to SVG coordinates, and the SVG of axes, ticks and labels."""

    def __init__(self, x_range, y_range, title: str, xlabel: str, ylabel: str):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def x(self, v: float) -> float:
        return _PAD_L + (v - self.x0) / (self.x1 - self.x0) * (CHART_W - _PAD_L - _PAD_R)

    def y(self, v: float) -> float:
        return CHART_H - _PAD_B - (v - self.y0) / (self.y1 - self.y0) * (CHART_H - _PAD_T - _PAD_B)

    def svg(self, content: str, aria: str) -> str:
        bottom, left = CHART_H - _PAD_B, _PAD_L
        parts = [f"<line class=\"axis\" x1=\"{left}\" y1=\"{bottom}\" x2=\"{CHART_W - _PAD_R}\" y2=\"{bottom}\"/>",
                 f"<line class=\"axis\" x1=\"{left}\" y1=\"{_PAD_T}\" x2=\"{left}\" y2=\"{bottom}\"/>"]
        for t in _ticks(self.x0, self.x1):
            parts.append(f"<text x=\"{self.x(t):.1f}\" y=\"{bottom + 14}\" text-anchor=\"middle\">{_tick_label(t)}</text>")
        for t in _ticks(self.y0, self.y1):
            parts.append(f"<text x=\"{left - 4}\" y=\"{self.y(t) + 4:.1f}\" text-anchor=\"end\">{_tick_label(t)}</text>")
        parts.append(f"<text x=\"{(left + CHART_W - _PAD_R) / 2}\" y=\"{CHART_H - 6}\" text-anchor=\"middle\">"
                     f"{esc(self.xlabel)}</text>")
        parts.append(f"<text transform=\"translate(12,{(CHART_H - _PAD_B + _PAD_T) / 2}) rotate(-90)\" "
                     f"text-anchor=\"middle\">{esc(self.ylabel)}</text>")
        parts.append(f"<text x=\"{CHART_W / 2}\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">"
                     f"{esc(self.title)}</text>")
        return (f"<svg role=\"img\" aria-label=\"{esc(aria)}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" "
                f"width=\"{CHART_W}\" height=\"{CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\">"
                + "".join(parts) + content + "</svg>")


def histogram_svg(values: Sequence[float], title: str, xlabel: str, ylabel: str = "count", bins: int = 30) -> str:
    """A histogram of `values`: at most `bins` rectangles whatever their number."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return _Frame((0, 1), (0, 1), title + " (no data)", xlabel, ylabel).svg("", title)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    frame = _Frame((lo, hi), (0, float(counts.max())), title, xlabel, ylabel)
    rects = []
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c:
            x, w, y = frame.x(a), max(frame.x(b) - frame.x(a) - 1, 1), frame.y(c)
            rects.append(f"<rect x=\"{x:.1f}\" y=\"{y:.1f}\" width=\"{w:.1f}\" height=\"{frame.y(0) - y:.1f}\" "
                         f"fill=\"{COLORS[0]}\"><title>{a:g}–{b:g}: {int(c)}</title></rect>")
    return frame.svg("".join(rects), title)


def _polyline(frame: _Frame, xs, ys, color: str, step: bool = False) -> str:
    pts = []
    prev_y = None
    for x, y in zip(xs, ys):
        if y is None or not math.isfinite(y):
            continue
        if step and prev_y is not None:
            pts.append(f"{frame.x(x):.1f},{frame.y(prev_y):.1f}")
        pts.append(f"{frame.x(x):.1f},{frame.y(y):.1f}")
        prev_y = y
    return f"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{' '.join(pts)}\"/>"


def cdf_svg(values: Sequence[float], title: str, xlabel: str, max_points: int = 400) -> str:
    """The empirical CDF of `values` (share of values <= x), drawn with at most `max_points` vertices."""
    v = np.sort(np.asarray([x for x in values if x is not None and math.isfinite(x)], float))
    if v.size == 0:
        return _Frame((0, 1), (0, 1), title + " (no data)", xlabel, "share").svg("", title)
    share = np.arange(1, v.size + 1) / v.size
    if v.size > max_points:
        idx = np.unique(np.linspace(0, v.size - 1, max_points).round().astype(int))
        v, share = v[idx], share[idx]
    lo, hi = float(v[0]), float(v[-1])
    frame = _Frame((lo, hi if hi > lo else lo + 1), (0, 1), title, xlabel, "share of speakers at or below")
    return frame.svg(_polyline(frame, v.tolist(), share.tolist(), COLORS[0], step=True), title)


def lines_svg(series: Mapping[str, Tuple[Sequence[float], Sequence[Optional[float]]]], title: str, xlabel: str,
              ylabel: str = "", max_points: int = 500) -> str:
    """Line chart of {name: (xs, ys)} with a legend; each series thinned to `max_points` vertices."""
    clean: Dict[str, Tuple[List[float], List[float]]] = {}
    for name, (xs, ys) in series.items():
        pairs = [(float(x), float(y)) for x, y in zip(xs, ys)
                 if y is not None and x is not None and math.isfinite(float(y))]
        if len(pairs) > max_points:
            step = len(pairs) / max_points
            pairs = [pairs[int(i * step)] for i in range(max_points)] + [pairs[-1]]
        if pairs:
            clean[name] = ([p[0] for p in pairs], [p[1] for p in pairs])
    if not clean:
        return _Frame((0, 1), (0, 1), title + " (no data)", xlabel, ylabel).svg("", title)
    allx = [x for xs, _ in clean.values() for x in xs]
    ally = [y for _, ys in clean.values() for y in ys]
    lo_y, hi_y = min(ally), max(ally)
    frame = _Frame((min(allx), max(allx)), (min(0.0, lo_y), hi_y), title, xlabel, ylabel)
    parts, legend = [], []
    for i, (name, (xs, ys)) in enumerate(clean.items()):
        color = COLORS[i % len(COLORS)]
        parts.append(_polyline(frame, xs, ys, color))
        legend.append(f"<text x=\"{CHART_W - _PAD_R - 4}\" y=\"{_PAD_T + 12 + 13 * i}\" text-anchor=\"end\" "
                      f"style=\"fill:{color}\">{esc(name)}</text>")
    return frame.svg("".join(parts + legend), title)
