"""Figures of chapters 4 and 5: LoRA, adapters and prefix tuning, the memory of fine-tuning."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import Circle, Polygon, Rectangle

from ._common import EDGE, FILL, INK, MUTED, _arrow, _box, _canvas, _text

# ---------------------------------------------------------------------------------------------------------------
# Chapter 4: parameter-efficient fine-tuning
# ---------------------------------------------------------------------------------------------------------------

def lora() -> Figure:
    """LoRA's bypass beside the frozen W0, and the merge, with SmolLM2's q_proj as the worked size."""
    d, r = 576, 8  # SmolLM2-135M's q_proj (576 x 576) with chapter 4's rank
    fig, ax = _canvas(3.75)
    _text(ax, 1.85, 3.55, r"$h = W_0\,x + \frac{\alpha}{r}\,B\,A\,x$", size=12, ha="center")
    # x at the bottom, two paths up, summed into h
    _box(ax, 0.2, 0.3, 3.3, 0.34, r"$x$   ($d_{in}$)", "grey", size=9)
    _box(ax, 0.2, 2.85, 3.3, 0.34, r"$h$   ($d_{out}$)", "grey", size=9)
    _box(ax, 0.2, 1.0, 1.5, 1.5, "", "blue")
    _text(ax, 0.95, 2.05, r"$W_0$", size=13, ha="center")
    _text(ax, 0.95, 1.6, r"$d_{out} \times d_{in}$", size=8.5, ha="center")
    _text(ax, 0.95, 1.25, "pretrained, frozen", size=8, ha="center", colour=EDGE["blue"])
    # A narrows d_in -> r, B widens r -> d_out (the LoRA paper's trapezoids)
    ax.add_patch(Polygon([(2.0, 1.0), (3.1, 1.0), (2.72, 1.6), (2.38, 1.6)], fc=FILL["red"], ec=EDGE["red"],
                         lw=1.1))
    ax.add_patch(Polygon([(2.38, 1.9), (2.72, 1.9), (3.1, 2.5), (2.0, 2.5)], fc=FILL["red"], ec=EDGE["red"],
                         lw=1.1))
    _text(ax, 2.55, 1.3, r"$A$", size=11, ha="center")
    _text(ax, 2.55, 2.2, r"$B$", size=11, ha="center")
    _text(ax, 3.1, 1.3, r"$r \times d_{in}$" + "\nrandom init", size=7.5, colour=EDGE["red"])
    _text(ax, 3.1, 2.2, r"$d_{out} \times r$" + "\nzero init", size=7.5, colour=EDGE["red"])
    _text(ax, 2.55, 1.75, r"$r$", size=8.5, ha="center", colour=EDGE["red"])
    for x in (0.95, 2.55):
        _arrow(ax, (x, 0.64), (x, 1.0))
        _arrow(ax, (x, 2.5), (x, 2.85))
    _text(ax, 2.63, 2.67, r"$\times\,\alpha/r$", size=8.5, colour=EDGE["red"])
    _text(ax, 1.75, 2.67, "+", size=12, ha="center")
    _text(ax, 1.85, 0.1, "B = 0 at the start, so BA = 0: the model begins unchanged", size=8, ha="center",
          colour=MUTED)

    # right: the merge, as matrix shapes
    _text(ax, 5.5, 3.55, "After training: merge", size=10, ha="center", weight="bold")
    _text(ax, 5.5, 3.2, r"$W = W_0 + \frac{\alpha}{r}\,B\,A$", size=11, ha="center")
    s, t, y = 0.62, 0.1, 1.85  # drawn sizes of d and r, bottom of the row
    _box(ax, 4.1, y, s, s, "", "blue", radius=0.03)
    _text(ax, 4.1 + s / 2, y + s / 2, r"$W$", size=11, ha="center")
    _text(ax, 4.86, y + s / 2, "=", size=12, ha="center")
    _box(ax, 5.0, y, s, s, "", "blue", radius=0.03)
    _text(ax, 5.0 + s / 2, y + s / 2, r"$W_0$", size=11, ha="center")
    _text(ax, 5.86, y + s / 2, r"$+\,\frac{\alpha}{r}$", size=11, ha="center")
    _box(ax, 6.1, y, t, s, "", "red", radius=0.02)
    _box(ax, 6.26, y + s - t, s, t, "", "red", radius=0.02)
    _text(ax, 6.1 + t / 2, y - 0.12, "B", size=8.5, ha="center")
    _text(ax, 6.26 + s / 2, y + s + 0.12, "A", size=8.5, ha="center")
    _text(ax, 5.5, 1.45, "one plain matrix again:\nno extra cost at inference", size=8, ha="center", va="top",
          colour=MUTED)
    trainable, frozen = r * (d + d), d * d
    _text(ax, 5.5, 0.85, f"SmolLM2's q_proj ({d} × {d}), r = {r}:\nA + B = {trainable:,} trained,\n"
          f"W₀ = {frozen:,} frozen ({trainable / frozen:.1%})", size=8, ha="center", va="top")
    return fig


def adapter_and_prefix() -> Figure:
    """One (pre-norm, Llama-style) Transformer layer: where two adapters sit and where prefix keys/values enter."""
    fig, ax = _canvas(5.45)
    cx, w = 3.45, 1.9
    x0, rx = cx - w / 2, cx + w / 2 + 0.3  # rx: the residual path
    blocks = [  # (y, height, text, colour), bottom-up
        (0.6, 0.32, "RMSNorm", "grey"),
        (1.15, 0.48, "self-attention\n(q, k, v, then o_proj)", "blue"),
        (1.88, 0.34, "adapter 1", "red"),
        (2.95, 0.32, "RMSNorm", "grey"),
        (3.5, 0.48, "MLP\n(gate, up, down_proj)", "blue"),
        (4.23, 0.34, "adapter 2", "red"),
    ]
    _text(ax, cx, 0.12, "h from the layer below", size=8.5, ha="center")
    _arrow(ax, (cx, 0.25), (cx, 0.6))
    for k, (y, h, text, colour) in enumerate(blocks):
        _box(ax, x0, y, w, h, text, colour, size=8.5, weight="bold" if colour == "red" else "normal")
        if k in (0, 1, 3, 4):
            _arrow(ax, (cx, y + h), (cx, blocks[k + 1][0]))
    # each adapter sits before its residual add
    for branch_y, add_y, below, above in ((0.42, 2.55, 2.22, 2.95), (2.8, 4.9, 4.57, 5.18)):
        ax.add_patch(Circle((cx, add_y), 0.12, fc="white", ec=INK, lw=1.1))
        _text(ax, cx, add_y, "+", size=10, ha="center")
        ax.plot([cx, rx, rx], [branch_y, branch_y, add_y], color=INK, lw=1.1)
        _arrow(ax, (rx, add_y), (cx + 0.12, add_y))
        _arrow(ax, (cx, below), (cx, add_y - 0.12))
        _arrow(ax, (cx, add_y + 0.12), (cx, above))
    _text(ax, rx + 0.1, 1.45, "residual", size=7.5, colour=MUTED, rotation=90, ha="center")
    _text(ax, cx, 5.3, "to the next layer", size=8.5, ha="center")
    _text(ax, 0.15, 0.12, "blue: frozen   red: trained", size=7.5, colour=MUTED)

    # right inset: the bottleneck
    bx, bw = 5.1, 1.85
    _text(ax, bx + bw / 2, 5.15, "Bottleneck adapter", size=9.5, ha="center", weight="bold")
    _text(ax, bx + bw / 2, 4.94, "(Houlsby et al. 2019)", size=7.5, ha="center", colour=MUTED)
    _box(ax, bx, 1.75, bw, 3.02, colour="grey", fill="white", ls=(0, (3, 2)), lw=0.9, radius=0.1)
    mx = bx + 0.8
    _text(ax, mx, 4.58, "h (hidden 576)", size=7.5, ha="center")
    inset = [(3.85, 0.4, "down-proj  576 → 16"), (3.2, 0.4, "GELU"), (2.5, 0.45, "up-proj  16 → 576\nzero init")]
    for y, h, text in inset:
        _box(ax, mx - 0.65, y, 1.3, h, text, "red", size=7.5)
    _arrow(ax, (mx, 4.47), (mx, 4.25))
    _arrow(ax, (mx, 3.85), (mx, 3.6))
    _arrow(ax, (mx, 3.2), (mx, 2.95))
    ax.add_patch(Circle((mx, 2.15), 0.12, fc="white", ec=INK, lw=1.1))
    _text(ax, mx, 2.15, "+", size=10, ha="center")
    _arrow(ax, (mx, 2.5), (mx, 2.27))
    ax.plot([mx, bx + bw - 0.12, bx + bw - 0.12], [4.43, 4.43, 2.15], color=INK, lw=1)
    _arrow(ax, (bx + bw - 0.12, 2.15), (mx + 0.12, 2.15))
    _arrow(ax, (mx, 2.03), (mx, 1.82))
    _text(ax, bx + bw / 2, 1.6, "h + up(GELU(down(h))):\nidentity at step 0;\nadds depth: slower inference",
          size=7.5, ha="center", va="top", colour=MUTED)
    for y_from, y_to in ((2.05, 2.6), (4.4, 4.1)):
        ax.plot([x0 + w, bx], [y_from, y_to], color=EDGE["red"], lw=0.8, ls=(0, (2, 2)))

    # left inset: prefix keys and values
    px, cw = 0.2, 0.2
    _text(ax, 1.0, 5.15, "Prefix tuning", size=9.5, ha="center", weight="bold")
    _text(ax, 1.0, 4.94, "(Li & Liang 2021)", size=7.5, ha="center", colour=MUTED)
    for name, y in (("keys", 4.2), ("values", 3.45)):
        _text(ax, px, y + 0.33, name, size=8)
        for j in range(8):
            colour = "red" if j < 3 else "blue"
            ax.add_patch(Rectangle((px + j * cw, y), cw, cw, fc=FILL[colour], ec=EDGE[colour], lw=0.8))
        _text(ax, px + 1.5 * cw, y - 0.13, "n learned", size=7, ha="center", colour=EDGE["red"])
        _text(ax, px + 5.5 * cw, y - 0.13, "T from the input", size=7, ha="center", colour=EDGE["blue"])
    _text(ax, 0.2, 2.95, "in every layer, n trained keys\nand values come first; each\ntoken attends to n + T "
          "keys;\nthe real tokens sit at\npositions n … n + T − 1", size=7.5, va="top", colour=MUTED)
    _arrow(ax, (px + 8 * cw + 0.05, 3.55), (x0 - 0.02, 1.4), colour=EDGE["red"], rad=-0.2)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Chapter 5: memory
# ---------------------------------------------------------------------------------------------------------------

def memory_breakdown() -> Figure:
    """Bytes per parameter of mixed-precision AdamW, full fine-tuning vs LoRA, from memory.bytes_per_param."""
    from course_utils import memory

    per = memory.bytes_per_param()  # mixed precision, AdamW, fp32 master copy
    parts = [("weights (bf16)", per["weights"], "blue"), ("gradients (bf16)", per["gradients"], "green"),
             ("fp32 master copy", per["master copy"], "yellow"),
             ("Adam m (fp32)", per["optimizer states"] / 2, "red"), ("Adam v (fp32)", per["optimizer states"] / 2,
                                                                     "red")]
    total = sum(b for _, b, _ in parts)
    fig, ax = _canvas(3.35)
    scale, x0 = 3.5 / total, 2.25
    _text(ax, 0.15, 3.15, f"Bytes per parameter, mixed-precision AdamW: {' + '.join(f'{b:g}' for _, b, _ in parts)}"
          f" = {total:g}", size=10, weight="bold")
    rows = [(2.45, "full fine-tuning:\nevery parameter", parts),
            (1.75, "LoRA: a frozen\nbase parameter", parts[:1]),
            (1.05, "LoRA: a trained\nparameter (A, B)", parts)]
    for y, label, segs in rows:
        _text(ax, x0 - 0.12, y, label, size=8.5, ha="right")
        x = x0
        for k, (name, b, colour) in enumerate(segs):
            fill = FILL[colour] if k != 4 else "#e9b9ba"  # m and v share red; v a shade darker
            ax.add_patch(Rectangle((x, y - 0.2), b * scale, 0.4, fc=fill, ec=EDGE[colour], lw=0.9))
            _text(ax, x + b * scale / 2, y, f"{b:g}", size=8.5, ha="center")
            x += b * scale
        _text(ax, x + 0.1, y, f"{sum(b for _, b, _ in segs):g} B", size=9, weight="bold")
    ax.annotate("", xy=(x0 + total * scale, 0.72), xytext=(x0 + per["weights"] * scale, 0.72),
                arrowprops=dict(arrowstyle="<->", color=EDGE["red"], lw=1, shrinkA=0, shrinkB=0))
    _text(ax, x0 + (per["weights"] + total) * scale / 2, 0.57, f"only trained parameters pay these "
          f"{total - per['weights']:g}", size=8, ha="center", colour=EDGE["red"])
    legend_y, lx = 2.85, 0.5
    for k, (name, _, colour) in enumerate(parts):
        fill = FILL[colour] if k != 4 else "#e9b9ba"
        ax.add_patch(Rectangle((lx, legend_y - 0.06), 0.13, 0.13, fc=fill, ec=EDGE[colour], lw=0.8))
        _text(ax, lx + 0.18, legend_y, name, size=7.5)
        lx += 0.5 + len(name) * 0.052

    shape = memory.MODEL_SHAPES["Llama-2-7B"]
    n = memory.llama_param_count(**shape)
    r, targets = 8, ("q_proj", "v_proj")
    trainable = r * 2 * shape["hidden_size"] * len(targets) * shape["num_layers"]  # A + B on 4096 x 4096 layers
    full = memory.estimate_finetune_memory(n, mode="full").total / memory.GIB
    lora_gib = memory.estimate_finetune_memory(n, mode="lora", trainable_params=trainable).total / memory.GIB
    billions = f"{n / 1e9:.1f} B"
    _text(ax, 0.15, 0.22, f"Llama-2-7B, {billions} parameters, before activations: full fine-tuning {billions} × "
          f"{total:g} B = {full * memory.GIB / 1e9:.0f} GB = {full:.0f} GiB;\nLoRA r = {r} on q_proj and v_proj "
          f"({trainable / 1e6:.1f} M trained): {billions} × {per['weights']:g} B + {trainable / 1e6:.1f} M × "
          f"{total:g} B = {lora_gib * memory.GIB / 1e9:.1f} GB = {lora_gib:.1f} GiB", size=8, colour=MUTED)
    return fig
