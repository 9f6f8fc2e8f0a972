"""Shared figure helpers, so every chapter's plots look alike and stay a line or two in the notebook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap

from .masks import mask_regions

# The LLM Q&A's figure: blue prefix<->prefix, green target->prefix, yellow target->target; grey = masked.
REGION_COLOURS = ["#eeeeee", "#4c72b0", "#55a868", "#f2c14e", "#c44e52"]
REGION_NAMES = ["masked", "prefix ↔ prefix", "target → prefix", "target → target", "prefix → target"]


def plot_masks(masks: Mapping[str, torch.Tensor], prefix_len: int = 0,
               tokens: Sequence[str] | None = None, size: float = 3.2):
    """Draw boolean ``[T, T]`` attention masks side by side, coloured by region like the LLM Q&A's figure.

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


def plot_alibi_heads(num_heads: int = 8, length: int = 12, heads: Sequence[int] | None = None):
    """ALiBi's bias matrix ``-m (i - j)`` of a few heads side by side (white = masked future)."""
    from .positions import alibi_bias, alibi_slopes

    bias, slopes = alibi_bias(num_heads, length), alibi_slopes(num_heads)
    heads = list(heads) if heads is not None else [0, num_heads // 2 - 1, num_heads - 1]
    fig, axes = plt.subplots(1, len(heads), figsize=(3.2 * len(heads), 3.2))
    for ax, h in zip(axes, heads):
        im = ax.imshow(bias[h].masked_fill(torch.isinf(bias[h]), float("nan")).numpy(), cmap="viridis")
        ax.set_title(f"head {h + 1}: m = 1/{1 / slopes[h].item():.4g}")
        ax.set_xlabel("key j")
        ax.set_ylabel("query i")
        fig.colorbar(im, ax=ax, shrink=0.75)
    fig.suptitle("ALiBi bias added to the attention scores: steep heads look near, flat heads look far")
    fig.tight_layout()
    return fig


def plot_rope_rotations(head_dim: int = 64, base: float = 10000.0, scale: float = 1.0, max_pos: int = 256,
                        pairs: Sequence[int] | None = None, train_len: int | None = None, ax=None):
    """``cos(m theta_i)`` against position ``m`` for a few dimension pairs: fast pairs turn every few tokens,
    slow ones barely move inside the training length (the ones extrapolation pushes to unseen angles)."""
    from .positions import rope_inv_freq

    inv = rope_inv_freq(head_dim, base, scale)
    pairs = list(pairs) if pairs is not None else sorted({0, len(inv) // 4, len(inv) // 2, len(inv) - 1})
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    m = torch.arange(max_pos, dtype=torch.float32)
    for i in pairs:
        ax.plot(m.numpy(), torch.cos(m * inv[i]).numpy(), label=f"pair {i}: wavelength {2 * torch.pi / inv[i]:.0f}")
    if train_len:
        ax.axvspan(0, train_len, color="grey", alpha=0.12, label=f"training length {train_len}")
    ax.set_xlabel("position m")
    ax.set_ylabel("cos(m θ_i)")
    ax.set_title(f"RoPE rotations (base {base:g}, scale {scale:g})")
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_loss_by_position(curves: Mapping[str, torch.Tensor], train_len: int, ax=None, smooth: int = 8):
    """Next-token loss at each position (moving average over ``smooth`` positions), the training length marked."""
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    for name, c in curves.items():
        k = max(1, min(smooth, len(c)))
        avg = torch.nn.functional.avg_pool1d(c.view(1, 1, -1), k, stride=1).flatten()
        ax.plot((torch.arange(len(avg)) + k // 2).numpy(), avg.detach().cpu().numpy(), label=name)
    ax.axvline(train_len, color="grey", ls="--", lw=1)
    ax.set_xlabel("position in the window")
    ax.set_ylabel("loss (nats / byte)")
    ax.set_title("Where each model breaks: loss by position")
    ax.legend()
    return ax


class LiveLossPlot:
    """Redraws the loss curve in place in a notebook every few steps (no-op outside IPython)."""

    def __init__(self, every: int = 5):
        import matplotlib.pyplot as plt

        self.every, self.plt = every, plt
        self.fig, self.ax = plt.subplots(figsize=(6, 3.5))
        try:
            from IPython.display import display

            self.handle = display(self.fig, display_id=True)
        except ImportError:  # plain Python: nothing to update
            self.handle = None

    def update(self, result, force: bool = False) -> None:
        """Redraw ``result`` (an ``sft.TrainResult``) every ``every`` steps, or now with ``force``."""
        if self.handle is None or not (force or result.step % self.every == 0):
            return
        self.ax.clear()
        result.plot(self.ax)
        self.handle.update(self.fig)

    def close(self) -> None:
        self.plt.close(self.fig)
