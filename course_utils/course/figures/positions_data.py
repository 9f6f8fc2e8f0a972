"""Figures of chapters 6, 7, 9 and 10: RoPE, ALiBi, interpolation, Self-Instruct, token shift, SliCK."""

from __future__ import annotations

import math

from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.patches import Arc, Circle, FancyBboxPatch, Polygon, Rectangle

from ._common import EDGE, FILL, INK, MONO, MONO_ADVANCE, MUTED, WIDTH, _arrow, _box, _canvas, _number, _text

# ---------------------------------------------------------------------------------------------------------------
# Chapter 6: positions
# ---------------------------------------------------------------------------------------------------------------

def rope_rotation() -> Figure:
    """One RoPE pair rotated by m theta_i at a few positions, and the relative angle between query and key."""
    from course_utils import positions

    head_dim, pair, start = 64, 1, 0.3  # start: the pair's direction before rotation (radians)
    theta = float(positions.rope_inv_freq(head_dim)[pair])
    fig, ax = _canvas(3.7)
    blues = ["#8fa8d6", "#6f8fca", "#4c72b0", "#36578f", "#223d6b"]

    # left: the pair at positions m = 0..4
    c, R = (1.75, 1.55), 1.15
    ax.add_patch(Circle(c, R, fc="none", ec=FILL["grey"], lw=1.5))
    ax.plot([c[0] - R - 0.2, c[0] + R + 0.25], [c[1], c[1]], color=EDGE["grey"], lw=0.8)
    ax.plot([c[0], c[0]], [c[1] - R - 0.2, c[1] + R + 0.2], color=EDGE["grey"], lw=0.8)
    _text(ax, c[0] + R + 0.28, c[1] - 0.12, r"$x_{2i}$", size=9, colour=MUTED)
    _text(ax, c[0] + 0.07, c[1] + R + 0.16, r"$x_{2i+1}$", size=9, colour=MUTED)
    for m, colour in enumerate(blues):
        a = start + m * theta
        tip = (c[0] + R * math.cos(a), c[1] + R * math.sin(a))
        _arrow(ax, c, tip, colour=colour, lw=1.6)
        _text(ax, c[0] + (R + 0.2) * math.cos(a), c[1] + (R + 0.2) * math.sin(a), f"m = {m}", size=8,
              ha="center", colour=colour)
    ax.add_patch(Arc(c, 0.9, 0.9, theta1=math.degrees(start), theta2=math.degrees(start + theta), color=INK, lw=1))
    mid = start + theta / 2
    _text(ax, c[0] + 0.6 * math.cos(mid), c[1] + 0.6 * math.sin(mid), r"$\theta_i$", size=9, ha="center")
    _text(ax, 1.75, 3.5, "One pair at positions m = 0 … 4", size=9.5, ha="center", weight="bold")
    _text(ax, 1.75, 3.22, r"pair $i$ is turned by $m\,\theta_i$,  $\theta_i = \mathrm{base}^{-2i/d}$", size=9.5,
          ha="center")
    _text(ax, 1.75, 0.12, f"i = {pair}, d = {head_dim}, base 10,000: θ = {theta:.2f} rad per position", size=7.5,
          ha="center", colour=MUTED)

    # right: query at m, key at n; the angle between them is (m - n) theta
    _text(ax, 5.3, 3.5, "Only the distance m − n counts", size=9.5, ha="center", weight="bold")
    _text(ax, 5.3, 3.22, r"$\langle R_m q,\, R_n k\rangle = \langle q,\, R_{n-m}\, k\rangle$", size=9.5,
          ha="center")
    for cx, (m, n) in ((4.45, (3, 1)), (6.15, (7, 5))):
        cc, r = (cx, 1.6), 0.72
        ax.add_patch(Circle(cc, r, fc="none", ec=FILL["grey"], lw=1.5))
        for pos, colour, name in ((m, EDGE["red"], "q"), (n, EDGE["green"], "k")):
            a = start + pos * theta
            _arrow(ax, cc, (cc[0] + r * math.cos(a), cc[1] + r * math.sin(a)), colour=colour, lw=1.6)
            _text(ax, cc[0] + (r + 0.17) * math.cos(a), cc[1] + (r + 0.17) * math.sin(a),
                  f"{name} at {pos}", size=7.5, ha="center", colour=colour)
        lo, hi = sorted((math.degrees(start + n * theta) % 360, math.degrees(start + m * theta) % 360))
        ax.add_patch(Arc(cc, 0.6, 0.6, theta1=lo, theta2=hi, color=INK, lw=1))
        _text(ax, cx, 0.62, f"m − n = {m - n}: angle {m - n}θ", size=8, ha="center")
    _text(ax, 5.3, 0.12, "q and k are drawn with the same direction before rotation", size=7.5, ha="center",
          colour=MUTED)
    return fig


def alibi() -> Figure:
    """ALiBi's bias matrix for one head, and the slopes of 8 heads, from positions.alibi_bias / alibi_slopes."""
    from course_utils import positions

    heads, T = 8, 8
    bias = positions.alibi_bias(heads, T)[0].tolist()
    slopes = positions.alibi_slopes(heads).tolist()
    fig, ax = _canvas(3.5)
    cell, x0, top = 0.3, 0.55, 2.8
    _text(ax, x0 + T * cell / 2, 3.33, f"Bias of head 1 (slope m = 1/{1 / slopes[0]:.0f})", size=9.5, ha="center",
          weight="bold")
    _text(ax, x0 + T * cell / 2, 3.1, "added to the score of query i and key j", size=8, ha="center",
          colour=MUTED)
    worst = -min(v for row in bias for v in row if v != float("-inf"))
    for i, row in enumerate(bias):
        for j, v in enumerate(row):
            blocked = v == float("-inf")
            shade = 0 if blocked else -v / worst  # 0 = no penalty, 1 = the largest
            fc = FILL["grey"] if blocked else mcolors.to_hex(
                [1 - shade * (1 - c) for c in mcolors.to_rgb(EDGE["red"])])
            ax.add_patch(Rectangle((x0 + j * cell, top - (i + 1) * cell), cell, cell, fc=fc, ec="white", lw=1))
            _text(ax, x0 + (j + 0.5) * cell, top - (i + 0.5) * cell, "−∞" if blocked else _number(v), size=6.5,
                  ha="center", colour=MUTED if blocked else INK)
        _text(ax, x0 - 0.07, top - (i + 0.5) * cell, str(i), size=7.5, ha="right", colour=MUTED)
        _text(ax, x0 + (i + 0.5) * cell, top + 0.08, str(i), size=7.5, ha="center", colour=MUTED)
    _text(ax, x0 - 0.35, top - T * cell / 2, "query i", size=8, rotation=90, ha="center", colour=MUTED)
    _text(ax, x0 + T * cell + 0.05, top + 0.08, "key j", size=8, colour=MUTED)
    _text(ax, x0 + T * cell / 2, 0.2, "−m · (i − j) for j ≤ i;  −∞ (masked) for j > i", size=8.5, ha="center")

    # right: the slopes, a geometric sequence
    bx = fig.add_axes((0.55, 0.2, 0.41, 0.62))
    bx.bar(range(1, heads + 1), slopes, color=FILL["red"], edgecolor=EDGE["red"], linewidth=0.9)
    bx.set_yscale("log", base=2)
    bx.set_ylim(slopes[-1] / 2, slopes[0] * 1.4)  # every bar visible, each one step of the log scale
    bx.set_yticks(slopes, [f"1/{1 / s:.0f}" for s in slopes], fontsize=7.5)
    bx.minorticks_off()
    bx.set_xticks(range(1, heads + 1), [str(h) for h in range(1, heads + 1)], fontsize=7.5)
    bx.set_xlabel("head h", fontsize=8, color=MUTED)
    bx.set_ylabel("slope m", fontsize=8, color=MUTED)
    for side in ("top", "right"):
        bx.spines[side].set_visible(False)
    bx.tick_params(colors=MUTED, length=2)
    _text(ax, 0.755 * WIDTH, 3.33, f"Slopes of H = {heads} heads: " + r"$m_h = 2^{-8h/H}$", size=9.5,
          ha="center", weight="bold")
    _text(ax, 0.755 * WIDTH, 3.1, "steep heads look at the last few tokens, flat heads far back", size=8,
          ha="center", colour=MUTED)
    return fig


def interpolation_vs_extrapolation() -> Figure:
    """A 4x longer input: positions run past the trained range, or are scaled back into it (L/L')."""
    L, s = 8, 4  # drawn with 8 trained positions; the chapter's experiment uses L = 64 bytes and L' = 4L
    fig, ax = _canvas(3.25)
    x0, x1 = 2.0, 6.85
    unit = (x1 - x0) / (s * L)
    rows = {"train": 2.45, "extra": 1.55, "inter": 0.75}

    def axis(y):
        ax.add_patch(Rectangle((x0, y - 0.15), L * unit, 0.3, fc=FILL["blue"], ec="none"))
        ax.plot([x0, x1], [y, y], color=EDGE["grey"], lw=0.8)
        for k in range(s + 1):
            x = x0 + k * L * unit
            ax.plot([x, x], [y - 0.07, y + 0.07], color=EDGE["grey"], lw=0.8)
            _text(ax, x, y - 0.24, "0" if k == 0 else ("L" if k == 1 else f"{k}L"), size=7.5, ha="center",
                  colour=MUTED)

    def dots(y, xs, colours):
        for x, colour in zip(xs, colours):
            ax.add_patch(Circle((x0 + x * unit, y), 0.045, fc=colour, ec="none"))

    labels = {"train": "training:\npositions 0 … L − 1", "extra": "extrapolation:\npositions 0 … L′ − 1, as is",
              "inter": "interpolation:\nposition m → m · L / L′"}
    for key, label in labels.items():
        axis(rows[key])
        _text(ax, 0.12, rows[key], label, size=8.5)
    dots(rows["train"], range(L), [EDGE["blue"]] * L)
    _text(ax, x0 + L * unit + 0.1, rows["train"] + 0.25, "the trained range [0, L)", size=8, colour=EDGE["blue"])
    dots(rows["extra"], range(s * L), [EDGE["blue"] if m < L else EDGE["red"] for m in range(s * L)])
    _text(ax, x0 + 2.5 * L * unit, rows["extra"] + 0.25, "positions never seen in training", size=8, ha="center",
          colour=EDGE["red"])
    for m in range(s * L):  # squeezed positions as ticks: dots would overlap
        x = x0 + m / s * unit
        ax.plot([x, x], [rows["inter"] - 0.1, rows["inter"] + 0.1], color=EDGE["green"], lw=1.1)
    for m in (L, 2 * L, 3 * L, s * L - 1):
        ax.plot([x0 + m * unit, x0 + m / s * unit], [rows["extra"] - 0.08, rows["inter"] + 0.12], color=MUTED,
                lw=0.6, ls=(0, (2, 2)))
    _text(ax, x0 + L * unit + 0.1, rows["inter"] - 0.43, f"all {s}L positions inside [0, L), neighbours 1/{s} apart",
          size=8, colour=EDGE["green"])
    _text(ax, WIDTH / 2, 0.12, f"f′(x, m) = f(x, m L / L′), scale s = L′ / L = {s}; in transformers: "
          "rope_type \"linear\" with factor s", size=8, ha="center")
    _text(ax, WIDTH / 2, 3.05, f"A longer input, L′ = {s}L: run past the trained positions, or squeeze them in",
          size=9.5, ha="center", weight="bold")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Chapter 7: Self-Instruct
# ---------------------------------------------------------------------------------------------------------------

def self_instruct_loop() -> Figure:
    """The course's Self-Instruct loop with its numbers (course_utils.self_instruct)."""
    import inspect

    from course_utils import self_instruct

    cfg = self_instruct.BootstrapConfig()
    n_seed = len(self_instruct.load_seed_tasks())
    n_shots = inspect.signature(self_instruct.classification_shots).parameters["n_shots"].default
    rouge = self_instruct.SIMILARITY_THRESHOLD
    fig, ax = _canvas(4.45)
    bw, bh = 1.95, 1.1
    xs = (0.15, 2.52, 4.9)
    top, low = 2.85, 0.6
    _text(ax, WIDTH / 2, 4.25, "Self-Instruct: the model writes its own instruction data", size=10, ha="center",
          weight="bold")
    _box(ax, xs[0], top, bw, bh, f"Task pool\n{n_seed} seed tasks\n(the paper: 175)\n+ every instruction "
         "kept", "blue", size=8)
    _box(ax, xs[1], top, bw, bh, f"Step 1: new instructions\nprompt: {cfg.n_prompt} instructions\n"
         f"({cfg.n_prompt - cfg.n_machine} seed + {cfg.n_machine} generated);\nthe model continues at "
         f"\"{cfg.n_prompt + 1}.\"\nT = {cfg.temperature:g}, top-p {cfg.top_p:g}", "grey", size=8)
    _box(ax, xs[2], top, bw, bh, f"Filter new instructions\nreject: ≤ 3 or > 150 words,\nblacklisted words "
         f"(image,\nfile, …), duplicates,\nROUGE-L ≥ {rouge:g} to the pool", "yellow", size=8)
    _box(ax, xs[2], low, bw, bh, f"Step 2: classification?\n{n_shots}-shot Yes / No;\nthe P(Yes) threshold\n"
         "calibrated on seed tasks", "grey", size=8)
    _box(ax, xs[1], low, bw, bh, "Step 3: instances\nclassification: label\nfirst (output-first);\n"
         "others: input first", "grey", size=8)
    _box(ax, xs[0], low, bw, bh, "Step 4: filter instances\nempty output, output =\ninput, a field cut off "
         "(':'),\none input, two outputs", "yellow", size=8)
    mid_top, mid_low = top + bh / 2, low + bh / 2
    _arrow(ax, (xs[0] + bw, mid_top), (xs[1], mid_top))
    _text(ax, (xs[0] + bw + xs[1]) / 2, mid_top + 0.13, "sample", size=7.5, ha="center", colour=MUTED)
    _arrow(ax, (xs[1] + bw, mid_top), (xs[2], mid_top))
    down_x, branch_y = xs[2] + bw / 2, 2.4
    _arrow(ax, (down_x, top), (down_x, low + bh))
    _text(ax, down_x + 0.08, 2.05, f"kept:\nROUGE-L < {rouge:g}", size=7.5, colour=EDGE["green"])
    # kept instructions join the pool at once, so later prompts can sample them
    ax.plot([down_x, xs[0] + bw / 2], [branch_y, branch_y], color=EDGE["green"], lw=1.1)
    _arrow(ax, (xs[0] + bw / 2, branch_y), (xs[0] + bw / 2, top), colour=EDGE["green"])
    _text(ax, (xs[0] + bw / 2 + down_x) / 2, branch_y + 0.13, "kept instructions join the pool at once",
          size=7.5, ha="center", colour=EDGE["green"])
    _arrow(ax, (xs[2], mid_low), (xs[1] + bw, mid_low))
    _arrow(ax, (xs[1], mid_low), (xs[0] + bw, mid_low))
    _arrow(ax, (xs[0] + bw / 2, low), (xs[0] + bw / 2, 0.32))
    _text(ax, xs[0] + bw / 2 + 0.1, 0.18, "instruction data {instruction, input, output} → fine-tuning",
          size=8, weight="bold")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Chapter 9: alignment
# ---------------------------------------------------------------------------------------------------------------

# An illustrative response of an aligned model with made-up ranks under the base, in the shapes URIAL reports:
# openers and list markers shift, the content mostly does not.
SHIFT_EXAMPLE = [("Here", 6), (" are", 1), (" three", 2), (" ways", 1), (" to", 1), (" save", 1), (" energy", 1),
                 (":", 1), ("\\n", 1), ("1", 4), (".", 1), (" Turn", 3), (" off", 1), (" the", 1), (" lights", 1)]
SHIFT_COLOURS = {"unshifted": "#ffffff", "marginal": "#ffe58a", "shifted": "#ff9b9b"}  # TokenShift.html's


def token_shift() -> Figure:
    """URIAL's token distribution shift: ranks under the base model, three classes, one coloured example."""
    from course_utils import alignment

    fig, ax = _canvas(3.3)
    _text(ax, WIDTH / 2, 3.1, "Token distribution shift (Lin et al. 2023, URIAL)", size=10, ha="center",
          weight="bold")
    steps = ["the aligned model answers\n(greedy decoding)", "the base model reads\nthe same text",
             "rank of the aligned token\nunder the base's next-token\ndistribution"]
    for k, text in enumerate(steps):
        _box(ax, 0.15 + k * 2.35, 2.15, 2.0, 0.65, text, "grey", size=8)
        if k:
            _arrow(ax, (0.15 + k * 2.35 - 0.33, 2.475), (0.15 + k * 2.35 - 0.02, 2.475))
    classes = [(1, "rank 1: unshifted"), (2, "rank 2–3: marginal"), (4, "rank > 3: shifted")]
    for k, (rank, text) in enumerate(classes):
        kind = alignment.shift_kind(rank)
        ax.add_patch(FancyBboxPatch((0.9 + k * 1.95, 1.6), 1.7, 0.3, boxstyle="round,pad=0,rounding_size=0.05",
                                    fc=SHIFT_COLOURS[kind], ec=EDGE["grey"], lw=0.9))
        _text(ax, 0.9 + k * 1.95 + 0.85, 1.75, text, size=8.5, ha="center")

    # the example: one box per token, its rank under the base below it
    x, y, size = 0.2, 0.95, 8
    adv = MONO_ADVANCE * size / 72
    _text(ax, 0.15, 1.3, "User: How can I save energy at home?   Aligned model's answer, each token with its rank "
          "under the base:", size=8, colour=MUTED)
    for token, rank in SHIFT_EXAMPLE:
        shown = token.strip() or token
        lead = adv * 0.7 if token.startswith(" ") else 0.04
        x += lead
        w = len(shown) * adv + 0.1
        ax.add_patch(FancyBboxPatch((x, y - 0.14), w, 0.28, boxstyle="round,pad=0,rounding_size=0.04",
                                    fc=SHIFT_COLOURS[alignment.shift_kind(rank)], ec=EDGE["grey"], lw=0.6))
        _text(ax, x + w / 2, y, shown, size=size, ha="center", family=MONO)
        _text(ax, x + w / 2, y - 0.27, str(rank), size=7, ha="center", colour=MUTED)
        x += w
    _text(ax, 0.15, 0.28, "Illustrative ranks, in the pattern URIAL reports: few tokens shift (7.8 % for "
          "Llama-2-7B vs its chat version),", size=8, colour=MUTED)
    _text(ax, 0.15, 0.1, "mostly openers, connectives and list markers; the content stays the base model's first "
          "choice.", size=8, colour=MUTED)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Chapter 10: knowledge
# ---------------------------------------------------------------------------------------------------------------

def slick_categories() -> Figure:
    """SliCK's decision rules (slick.categorize) as a diagram, with the course's sampling sizes."""
    from course_utils import slick

    sizes = slick.SliCKSizes(n_sets=10)  # the paper's 10 exemplar sets; shots, samples, T: the course's defaults
    # each leaf label comes from the course's own rule, fed a (P greedy, P sample) that lands there
    leaves = [slick.categorize(1.0, 1.0), slick.categorize(0.5, 0.5), slick.categorize(0.0, 0.5),
              slick.categorize(0.0, 0.0)]
    if tuple(leaves[:2]) != tuple(slick.KNOWN):
        raise ValueError(f"slick.KNOWN is {slick.KNOWN}, not the first two categories {leaves[:2]}: redraw the "
                         "'known' bracket.")
    fig, ax = _canvas(4.5)
    _text(ax, WIDTH / 2, 4.32, "SliCK: what does the model already know? (Gekhman et al. 2024)", size=10,
          ha="center", weight="bold")
    dx, dw, dh, cx, cw = 1.3, 2.0, 0.72, 3.05, 1.3
    _box(ax, 0.15, 3.45, 4.75, 0.6, f"a question and its answer, asked {sizes.k_shot}-shot under each of N exemplar "
         f"sets\n(the paper: {sizes.n_sets}): 1 greedy answer + {sizes.n_samples} samples at T = "
         f"{sizes.temperature:g}; right = exact match", "grey", size=7.5)
    questions = ["greedy right under\nevery exemplar set?", "greedy right under\nsome exemplar sets?",
                 "is some sample\never right?"]
    ys = [2.85, 1.85, 0.85, 0.2]
    rules = [r"$P_\mathrm{correct}(T{=}0) = 1$", r"$0 < P_\mathrm{correct}(T{=}0) < 1$",
             r"$P_\mathrm{correct}(T{=}0) = 0,\ P_\mathrm{correct}(T{>}0) > 0$",
             r"$P_\mathrm{correct} = 0$ at every $T$"]
    glosses = ["always answers it", "depends on the exemplars", "only by luck, when sampling", "does not know it"]
    colours = ["green", "green", "yellow", "red"]
    _arrow(ax, (dx, 3.45), (dx, ys[0] + dh / 2))
    for k, (y, question) in enumerate(zip(ys, questions)):
        ax.add_patch(Polygon([(dx - dw / 2, y), (dx, y + dh / 2), (dx + dw / 2, y), (dx, y - dh / 2)],
                             fc=FILL["yellow"], ec=EDGE["yellow"], lw=1.1))
        _text(ax, dx, y, question, size=7.5, ha="center")
        _arrow(ax, (dx + dw / 2, y), (cx - 0.02, y))
        _text(ax, (dx + dw / 2 + cx) / 2, y + 0.11, "yes", size=7.5, ha="center", colour=MUTED)
        _text(ax, dx + 0.07, y - dh / 2 - 0.1, "no", size=7.5, colour=MUTED)
        if k + 1 < len(questions):
            _arrow(ax, (dx, y - dh / 2), (dx, ys[k + 1] + dh / 2))
    ax.plot([dx, dx], [ys[2] - dh / 2, ys[3]], color=INK, lw=1.1)  # the last "no": never right
    _arrow(ax, (dx, ys[3]), (cx - 0.02, ys[3]))
    for y, leaf, rule, gloss, colour in zip(ys, leaves, rules, glosses, colours):
        _box(ax, cx, y - 0.17, cw, 0.34, leaf, colour, size=8.5, weight="bold")
        _text(ax, cx + cw + 0.15, y + 0.08, rule, size=8)
        _text(ax, cx + cw + 0.15, y - 0.12, gloss, size=7.5, colour=MUTED)
    # the two greedy-right categories are what the chapter calls known facts
    bx = 6.55
    ax.plot([bx - 0.07, bx, bx, bx - 0.07], [ys[0] + 0.22, ys[0] + 0.22, ys[1] - 0.22, ys[1] - 0.22],
            color=EDGE["green"], lw=1)
    _text(ax, bx + 0.13, (ys[0] + ys[1]) / 2, "known", size=8, rotation=90, ha="center", colour=EDGE["green"])
    return fig
