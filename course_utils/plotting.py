"""Shared figure helpers, so every chapter's plots look alike and stay a line or two in the notebook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap

from .masks import mask_regions

# The seed's figure: blue prefix<->prefix, green target->prefix, yellow target->target; grey = masked.
REGION_COLOURS = ["#eeeeee", "#4c72b0", "#55a868", "#f2c14e", "#c44e52"]
REGION_NAMES = ["masked", "prefix ↔ prefix", "target → prefix", "target → target", "prefix → target"]


def plot_masks(masks: Mapping[str, torch.Tensor], prefix_len: int = 0,
               tokens: Sequence[str] | None = None, size: float = 3.2):
    """Draw boolean ``[T, T]`` attention masks side by side, coloured by region like seed 001's figure.

    Rows are queries (the token that looks), columns keys (the token looked at).
    """
    fig, axes = plt.subplots(1, len(masks), figsize=(size * len(masks), size + 0.6), squeeze=False)
    cmap = ListedColormap(REGION_COLOURS)
    for ax, (title, allowed) in zip(axes[0], masks.items()):
        ax.imshow(mask_regions(allowed, prefix_len).numpy(), cmap=cmap, vmin=0, vmax=len(REGION_COLOURS) - 1)
        ax.set_title(title)
        ax.set_xlabel("key j (attended to)")
        ax.set_ylabel("query i")
        if tokens is not None:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in REGION_COLOURS]
    fig.legend(handles, REGION_NAMES, loc="lower center", ncol=len(REGION_NAMES), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def bar(values: Mapping[str, float], title: str = "", ylabel: str = "", ax=None, fmt: str = "{:.2f}"):
    """A labelled bar chart of ``{name: value}`` with the value printed on each bar."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, 0.9 * len(values)), 3))
    bars = ax.bar(list(values), list(values.values()), color="#4c72b0")
    ax.bar_label(bars, [fmt.format(v) for v in values.values()], fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=30)
    return ax


def readable_tokens(tok, ids: Sequence[int] | torch.Tensor) -> list[str]:
    """Each token id decoded on its own, with spaces shown as '·' (tick labels for per-token plots)."""
    return [tok.decode([int(i)]).replace(" ", "·").replace("\n", "↵") for i in ids]


def token_strip(tokens: Sequence[str], values: Sequence[float], title: str = "", label: str = "", ax=None):
    """One value per token (e.g. the loss of each next token) as bars under the token strings."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(tokens)), 3))
    ax.bar(range(len(values)), values, color="#55a868")
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(label)
    return ax
