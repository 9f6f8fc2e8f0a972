"""The palette, canvas and drawing helpers every figure of the package shares."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

WIDTH = 7.0  # inches; data units of every canvas are inches too, so text sizes (points) are easy to place
STYLE = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "mathtext.fontset": "dejavusans",
    "svg.fonttype": "path",
    "svg.hashsalt": "sft-course",  # element ids derive from it: fixed salt, identical bytes run after run
    "axes.unicode_minus": True,
}
# One small palette for every figure: the colours of the course's mask plots (course_utils.plotting).
INK, MUTED = "#262626", "#6b6b6b"
EDGE = {"blue": "#4c72b0", "green": "#55a868", "yellow": "#d9a21b", "red": "#c44e52", "grey": "#8c8c8c"}
FILL = {"blue": "#dde5f2", "green": "#ddefe2", "yellow": "#fcf0cf", "red": "#f4dcdc", "grey": "#f0f0f0"}
MONO = "DejaVu Sans Mono"
MONO_ADVANCE = 1233 / 2048  # DejaVu Sans Mono's advance width per em: places coloured pieces of one line


# ---------------------------------------------------------------------------------------------------------------
# Drawing helpers
# ---------------------------------------------------------------------------------------------------------------

def _canvas(height: float) -> tuple[Figure, matplotlib.axes.Axes]:
    """A blank figure WIDTH x height inches whose data coordinates are inches from the bottom-left corner."""
    fig = Figure(figsize=(WIDTH, height))
    FigureCanvasAgg(fig)  # no pyplot: nothing global changes, nothing to close
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _box(ax, x, y, w, h, text="", colour="grey", *, size=9, weight="normal", family=None, ls="-", lw=1.1,
         fill=None, text_colour=INK, radius=0.06):
    """A rounded box with centred text; ``colour`` names an EDGE/FILL pair."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}", lw=lw, ls=ls,
                                fc=FILL[colour] if fill is None else fill, ec=EDGE[colour]))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, weight=weight,
                family=family or STYLE["font.family"], color=text_colour, linespacing=1.3)


def _arrow(ax, start, end, colour=INK, *, lw=1.1, rad=0.0, ls="-", head=10):
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(
        arrowstyle="-|>", color=colour, lw=lw, ls=ls, shrinkA=0, shrinkB=0, mutation_scale=head,
        connectionstyle=f"arc3,rad={rad}"))


def _text(ax, x, y, text, *, size=9, colour=INK, ha="left", va="center", **kw):
    ax.text(x, y, text, ha=ha, va=va, fontsize=size, color=colour, linespacing=1.3, **kw)


def _mono_pieces(ax, x, y, pieces: Sequence[tuple[str, str]], size=9):
    """One line of monospace text in coloured pieces ``(text, colour)``, left-aligned at ``x``."""
    advance = MONO_ADVANCE * size / 72
    for text, colour in pieces:
        ax.text(x, y, text, ha="left", va="center", fontsize=size, family=MONO, color=colour)
        x += len(text) * advance


def _number(v: float) -> str:
    """A bias or score for a cell: no "-0", a real minus sign, no trailing zeros."""
    return "0" if v == 0 else f"{v:g}".replace("-", "\u2212")
