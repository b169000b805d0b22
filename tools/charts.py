"""One chart style for every tool: phone-readable PNGs that draw Chinese names too.

Size: 1200 x 800 px by default (8 x 5.33 in at 150 dpi). Telegram shows photos up to
1280 px on the long side without re-compressing the text into mush, and at that size a
phone shows the 13 pt base font at about the size of chat text.

Fonts: DejaVu Sans (ships with matplotlib) for Latin, with Noto Sans SC (SIL OFL 1.1, from
the `pylopdf-fonts-zh-cn` wheel, a project dependency) as the fallback for CJK glyphs, so a
fresh machine needs no system fonts. A system CJK font is used only if that wheel is gone.

Threads: nothing here touches pyplot. Figures are plain `matplotlib.figure.Figure` objects
rendered by the Agg canvas, so no figure manager state is shared between threads. The style
is written into `matplotlib.rcParams` once, at import, with the same values every time, so
concurrent tools never see a half-applied style.

Typical use:

    fig = new_figure("Revenue by month")
    ax = fig.add_subplot()
    ax.bar(months, revenue, color=PALETTE[0])
    png = to_png(fig)

or one call for the common shapes: `bar_chart(...)`, `scatter(...)`.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on servers; must precede any backend use

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

log = logging.getLogger(__name__)

#: Default image size in pixels (width, height) and the resolution it is rendered at.
SIZE = (1200, 800)
DPI = 150
#: Okabe-Ito colours (readable for colour-blind people), yellow swapped for grey,
#: which stays visible on white.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#999999",
    "#000000",
)
#: Families tried for CJK glyphs when the bundled wheel is missing.
SYSTEM_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
)
#: Longest tick label, in characters, before it is shortened with an ellipsis.
LABEL_WIDTH = 28
#: Most bar labels written under a vertical bar chart.
MAX_BAR_LABELS = 12

_style_lock = threading.Lock()
_style_applied = False
_cjk_family: str | None = None


def cjk_font_path() -> Path | None:
    """Path of the bundled Noto Sans SC, or None when the font wheel is not installed."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


def cjk_family() -> str | None:
    """The font family used for CJK glyphs, or None when no such font was found."""
    apply_style()
    return _cjk_family


def apply_style() -> None:
    """Register the CJK font and write the shared style into rcParams (once per process)."""
    global _cjk_family, _style_applied
    with _style_lock:
        if _style_applied:
            return
        _cjk_family = _register_cjk_font()
        matplotlib.rcParams.update(_style(_cjk_family))
        _style_applied = True


def _register_cjk_font() -> str | None:
    path = cjk_font_path()
    if path is not None:
        font_manager.fontManager.addfont(str(path))
        return font_manager.FontProperties(fname=str(path)).get_name()
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in SYSTEM_CJK_FAMILIES:
        if family in installed:
            return family
    log.warning("no CJK font found; Chinese labels will draw as boxes")
    return None


def _style(cjk: str | None) -> dict[str, object]:
    # matplotlib falls back font by font per glyph, so Latin text keeps DejaVu Sans and
    # only CJK characters come from the second font. The list must be in font.family
    # itself: a generic name like "sans-serif" resolves to a single font, with no fallback.
    families = ["DejaVu Sans", *([cjk] if cjk else [])]
    return {
        "font.family": families,
        "font.size": 13,
        "figure.titlesize": 18,
        # Regular weight: the CJK font has no bold face, and a faked one logs a warning.
        "figure.titleweight": "normal",
        "axes.titlesize": 15,
        "axes.titlelocation": "left",
        "axes.labelsize": 13,
        "xtick.labelsize": 12,
        "ytick.labelsize": 12,
        "legend.fontsize": 12,
        "legend.frameon": False,
        "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#DDDDDD",
        "grid.linewidth": 0.8,
        "axes.axisbelow": True,
        "axes.unicode_minus": False,  # U+2212 is missing from some CJK fonts
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
    }


def new_figure(title: str, *, size: tuple[int, int] = SIZE) -> Figure:
    """A blank figure in the shared style, `size` in pixels, with `title` on top.

    Add axes with `fig.add_subplot()` or `fig.subplots(...)`; the layout engine keeps
    titles and labels inside the image.
    """
    apply_style()
    width, height = size
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    if title:
        figure.suptitle(title, x=0.02, ha="left")
    return figure


def to_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes at exactly its pixel size."""
    buffer = io.BytesIO()
    # No bbox_inches="tight": it would change the size the caller asked for.
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def shorten(label: object, width: int = LABEL_WIDTH) -> str:
    """A label cut to `width` characters with an ellipsis, so long names fit a phone."""
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def thousands(value: float, _position: object = None) -> str:
    """Axis tick text with thousands separators and short suffixes (12k, 3.4M)."""
    magnitude = abs(value)
    if magnitude >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if magnitude >= 1_000:
        # One style per axis: 5k next to 10k, not 5,000 next to 10k.
        return f"{value / 1_000:.1f}k".replace(".0k", "k")
    return f"{value:,.0f}" if magnitude >= 10 or value == int(value) else f"{value:.2g}"


def log_scale(ax: Axes, which: str = "y") -> None:
    """Log scale on axis `which` ("x" or "y"), labelled 1, 2, 5, 10, 20, ... not 10^n."""
    if which == "y":
        ax.set_yscale("log")
        axis = ax.yaxis
    else:
        ax.set_xscale("log")
        axis = ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(thousands))
    axis.set_minor_formatter(NullFormatter())


def bar_chart(
    labels: Sequence[object],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    horizontal: bool = False,
    color: str = PALETTE[0],
    size: tuple[int, int] = SIZE,
) -> bytes:
    """A one-series bar chart as PNG; `horizontal=True` suits long names (products)."""
    figure = new_figure(title, size=size)
    ax = figure.add_subplot()
    draw_bars(ax, labels, values, horizontal=horizontal, color=color)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return to_png(figure)


def draw_bars(
    ax: Axes,
    labels: Sequence[object],
    values: Sequence[float],
    *,
    horizontal: bool = False,
    color: str = PALETTE[0],
) -> None:
    """Draw bars on existing axes: shortened labels, value axis with readable numbers."""
    names = [shorten(label) for label in labels]
    positions = list(range(len(names)))
    if horizontal:
        # Largest first reads top-down, the way people scan a ranking.
        ax.barh(positions, list(values), color=color)
        ax.set_yticks(positions, names)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(FuncFormatter(thousands))
        ax.grid(axis="y", visible=False)
    else:
        ax.bar(positions, list(values), color=color)
        # Past a dozen labels a phone cannot show them all; label every n-th bar.
        step = max(1, -(-len(names) // MAX_BAR_LABELS))
        shown = [name if index % step == 0 else "" for index, name in enumerate(names)]
        rotation = 45 if len(names) > 6 else 0
        ax.set_xticks(positions, shown, rotation=rotation, ha="right" if rotation else "center")
        ax.yaxis.set_major_formatter(FuncFormatter(thousands))
        ax.grid(axis="x", visible=False)


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    groups: Sequence[object] | None = None,
    log_x: bool = False,
    log_y: bool = False,
    size: tuple[int, int] = SIZE,
) -> bytes:
    """A scatter plot as PNG, one colour per group (with a legend) when `groups` is given."""
    figure = new_figure(title, size=size)
    ax = figure.add_subplot()
    draw_scatter(ax, x, y, groups=groups)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_x:
        log_scale(ax, "x")
    if log_y:
        log_scale(ax, "y")
    return to_png(figure)


def draw_scatter(
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float],
    *,
    groups: Sequence[object] | None = None,
    point_size: float = 14,
) -> None:
    """Draw points on existing axes, coloured by group in order of first appearance."""
    x_values, y_values = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if groups is None:
        ax.scatter(x_values, y_values, s=point_size, color=PALETTE[0], alpha=0.6, linewidths=0)
        return
    labels = np.asarray([str(group) for group in groups], dtype=object)
    for index, group in enumerate(dict.fromkeys(labels)):
        chosen = labels == group
        ax.scatter(
            x_values[chosen],
            y_values[chosen],
            s=point_size,
            color=PALETTE[index % len(PALETTE)],
            alpha=0.6,
            linewidths=0,
            label=shorten(group),
        )
    ax.legend(markerscale=2, loc="best")


apply_style()
