"""Figures of chapters 1 and 2: attention masks, the two architectures, the prompt-learning pipeline."""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ._common import EDGE, FILL, INK, MONO, MONO_ADVANCE, MUTED, WIDTH, _arrow, _box, _canvas, _mono_pieces, _text

# ---------------------------------------------------------------------------------------------------------------
# Chapter 1: architectures and masks
# ---------------------------------------------------------------------------------------------------------------

def attention_masks() -> Figure:
    """Causal, prefix-LM and encoder-decoder masks as coloured cells, from course_utils.masks."""
    from course_utils import masks
    from course_utils.plotting import REGION_COLOURS

    n_src, n_tgt, cell = 3, 3, 0.27
    T = n_src + n_tgt
    names = [f"x{i}" for i in range(1, n_src + 1)] + [f"y{i}" for i in range(1, n_tgt + 1)]
    fig, ax = _canvas(3.25)
    top = 2.55

    def cells(x0, y0, regions, rows, cols, gap_after=None):
        """Draw a region matrix; ``gap_after`` splits it into encoder/decoder blocks with a gap."""
        for i in range(len(rows)):
            for j in range(len(cols)):
                gx = 0.1 if gap_after is not None and j >= gap_after else 0
                gy = 0.1 if gap_after is not None and i >= gap_after else 0
                code = int(regions[i][j])
                if code < 0:
                    continue
                ax.add_patch(Rectangle((x0 + j * cell + gx, y0 - (i + 1) * cell - gy), cell, cell,
                                       fc=REGION_COLOURS[code], ec="white", lw=1.2))
        for j, name in enumerate(cols):
            gx = 0.1 if gap_after is not None and j >= gap_after else 0
            _text(ax, x0 + (j + 0.5) * cell + gx, y0 + 0.1, name, size=7.5, ha="center", colour=MUTED)
        for i, name in enumerate(rows):
            gy = 0.1 if gap_after is not None and i >= gap_after else 0
            _text(ax, x0 - 0.06, y0 - (i + 0.5) * cell - gy, name, size=7.5, ha="right", colour=MUTED)

    causal = masks.mask_regions(masks.causal_mask(T), 0).tolist()  # no prefix: every token reads only the past
    prefix = masks.mask_regions(masks.prefix_lm_mask(T, n_src), n_src).tolist()
    enc_dec = masks.encoder_decoder_masks(n_src, n_tgt)
    # one block matrix: encoder self (source<->source), cross (target->source), decoder self (target->target)
    codes = [[masks.PREFIX_PREFIX if enc_dec["encoder self"][i, j] else masks.BLOCKED for j in range(n_src)]
             + [-1] * n_tgt for i in range(n_src)]
    codes += [[masks.TARGET_PREFIX if enc_dec["cross"][i, j] else masks.BLOCKED for j in range(n_src)]
              + [masks.TARGET_TARGET if enc_dec["decoder self"][i, j] else masks.BLOCKED for j in range(n_tgt)]
              for i in range(n_tgt)]

    panels = [(0.45, "Causal decoder", "GPT, Llama, SmolLM2", causal, None),
              (2.75, "Prefix decoder (prefix LM)", "UniLM, GLM", prefix, None),
              (5.0, "Encoder-decoder", "T5, BART", codes, n_src)]
    for x0, title, who, regions, gap in panels:
        _text(ax, x0 + T * cell / 2 + (0.05 if gap else 0), 3.12, title, size=9.5, ha="center", weight="bold")
        _text(ax, x0 + T * cell / 2 + (0.05 if gap else 0), 2.92, who, size=8, ha="center", colour=MUTED)
        cells(x0, top, regions, names, names, gap)
    # the encoder-decoder's empty corner: the encoder never reads the target
    ax.add_patch(Rectangle((5.0 + n_src * cell + 0.1, top - n_src * cell), n_tgt * cell, n_src * cell,
                           fc="none", ec=EDGE["grey"], lw=0.8, ls=(0, (2, 2))))
    _text(ax, 5.0 + n_src * cell + 0.1 + n_tgt * cell / 2, top - n_src * cell / 2, "encoder\nnever\nreads y",
          size=7, ha="center", colour=MUTED)
    _text(ax, 0.12, top - T * cell / 2, "query i", size=7.5, rotation=90, ha="center", colour=MUTED)
    _text(ax, 0.45 + T * cell + 0.08, top + 0.1, "key j", size=7.5, colour=MUTED)
    legend = [(masks.PREFIX_PREFIX, "prefix / source: both ways"),
              (masks.TARGET_PREFIX, "target reads prefix / source"),
              (masks.TARGET_TARGET, "causal: earlier tokens only"), (masks.BLOCKED, "masked")]
    x = 0.3
    for code, label in legend:
        ax.add_patch(Rectangle((x, 0.62), 0.16, 0.16, fc=REGION_COLOURS[code], ec="white"))
        _text(ax, x + 0.22, 0.7, label, size=7.5)
        x += 0.55 + len(label) * 0.052
    _text(ax, WIDTH / 2, 0.25, "x = prompt (prefix, source) tokens, y = target tokens. The prefix decoder and the "
          "encoder-decoder allow the\nsame pairs; the encoder-decoder splits them over two stacks, and its decoder "
          "reads the encoder's last layer.", size=7.5, ha="center", colour=MUTED)
    return fig


def encoder_decoder_vs_decoder_only() -> Figure:
    """The two architectures as block diagrams."""
    fig, ax = _canvas(3.9)

    def stack(x, y, w, layers, label, n_left=False):
        """Sublayers drawn bottom-up inside an outer box, with "N x" beside it; returns the box's height."""
        h = 0.16 + 0.44 * len(layers)
        _box(ax, x, y, w, h, colour="blue", fill="white", lw=1.3, radius=0.1)
        for k, (name, colour) in enumerate(layers):
            _box(ax, x + 0.12, y + 0.1 + 0.44 * k, w - 0.24, 0.34, name, colour, size=8.5)
        if n_left:
            _text(ax, x - 0.07, y + h / 2, "N ×", size=9, ha="right", colour=MUTED)
        else:
            _text(ax, x + w + 0.07, y + h / 2, "× N", size=9, colour=MUTED)
        _text(ax, x + w / 2, y + h + 0.13, label, size=9.5, ha="center", weight="bold")
        return h

    # left: encoder-decoder
    _text(ax, 2.05, 3.75, "Encoder-decoder", size=10.5, ha="center", weight="bold")
    _text(ax, 2.05, 3.53, "T5, BART", size=8, ha="center", colour=MUTED)
    ex, ew, dx, dw, y0 = 0.5, 1.4, 2.3, 1.45, 0.95
    he = stack(ex, y0, ew, [("bidirectional\nself-attention", "blue"), ("feed-forward", "grey")], "Encoder",
               n_left=True)
    hd = stack(dx, y0, dw, [("causal self-attention", "yellow"), ("cross-attention", "green"),
                            ("feed-forward", "grey")], "Decoder")
    _box(ax, ex, 0.3, ew, 0.38, "source x1 … xS", size=8)
    _box(ax, dx, 0.3, dw, 0.38, "target so far y1 … yt−1", size=7.5)
    _arrow(ax, (ex + ew / 2, 0.68), (ex + ew / 2, y0))
    _arrow(ax, (dx + dw / 2, 0.68), (dx + dw / 2, y0))
    # the encoder's last states feed the cross-attention of every decoder layer
    cross_y, route_y, gap_x = y0 + 0.1 + 0.44 + 0.17, y0 + he + 0.3, (ex + ew + dx) / 2
    out_x = ex + ew - 0.2  # right of the "Encoder" label
    ax.plot([out_x, out_x, gap_x, gap_x], [y0 + he, route_y, route_y, cross_y], color=EDGE["green"], lw=1.1)
    _arrow(ax, (gap_x, cross_y), (dx + 0.12, cross_y), colour=EDGE["green"])
    _text(ax, out_x - 0.05, route_y + 0.2, "encoder states,\nto every decoder layer", size=7.5, ha="right",
          colour=EDGE["green"])
    _arrow(ax, (dx + dw / 2, y0 + hd + 0.32), (dx + dw / 2, y0 + hd + 0.62))
    _text(ax, dx + dw / 2 + 0.1, y0 + hd + 0.5, "next token yt", size=8.5)
    _text(ax, 2.05, 0.08, "loss on the target only", size=7.5, ha="center", colour=MUTED)

    # right: decoder-only
    ax.plot([4.12, 4.12], [0.2, 3.75], color=FILL["grey"], lw=1.2)
    _text(ax, 5.55, 3.75, "Decoder-only", size=10.5, ha="center", weight="bold")
    _text(ax, 5.55, 3.53, "GPT, Llama, SmolLM2", size=8, ha="center", colour=MUTED)
    ox, ow = 4.75, 1.7
    hs = stack(ox, y0, ow, [("causal self-attention", "yellow"), ("feed-forward", "grey")], "Decoder", n_left=True)
    _box(ax, ox, 0.25, ow, 0.48, "one sequence:\nprompt + answer so far", size=8)
    _arrow(ax, (ox + ow / 2, 0.73), (ox + ow / 2, y0))
    _arrow(ax, (ox + ow / 2, y0 + hs + 0.32), (ox + ow / 2, y0 + hs + 0.62))
    _text(ax, ox + ow / 2 + 0.1, y0 + hs + 0.5, "next token", size=8.5)
    # generation appends the new token to the same sequence
    loop_x, loop_y = 6.68, y0 + hs + 0.47
    ax.plot([ox + ow / 2 + 0.85, loop_x, loop_x], [loop_y, loop_y, 0.49], color=MUTED, lw=1, ls=(0, (3, 2)))
    _arrow(ax, (loop_x, 0.49), (ox + ow + 0.02, 0.49), colour=MUTED)
    _text(ax, loop_x + 0.12, (loop_y + 0.49) / 2, "appended, read again (KV cache)", size=7.5, rotation=90,
          ha="center", colour=MUTED)
    _text(ax, 5.55, 0.08, "every position predicts the next token: T − 1 targets", size=7.5, ha="center",
          colour=MUTED)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Chapter 2: prompt learning
# ---------------------------------------------------------------------------------------------------------------

# log P(z | x') of each answer, from SmolLM2-135M-Instruct (float32) with prompting.answer_search, the template
# SENTIMENT_TEMPLATE and the seed's label words; rerun that call to refresh them.
PROMPT_EXAMPLE = "The yoga class left me calm and relaxed."  # sentiment3.jsonl, dev split, positive
PROMPT_SCORES = {"great": -8.32, "good": -8.89, "okay": -9.16, "bad": -11.86, "terrible": -12.92}


def prompt_learning_pipeline() -> Figure:
    """Template -> answer search -> verbalizer on one review of the course's sentiment data."""
    from course_utils import prompting

    verbalizer = prompting.Verbalizer(prompting.SEED_LABEL_WORDS)
    if list(PROMPT_SCORES) != list(verbalizer.answers):
        raise ValueError(f"PROMPT_SCORES covers {list(PROMPT_SCORES)}, but the seed's answers are "
                         f"{verbalizer.answers}: rescore them with prompting.answer_search.")
    fig, ax = _canvas(4.35)
    size, adv = 9, MONO_ADVANCE * 9 / 72
    head, slot = prompting.SENTIMENT_TEMPLATE.split(prompting.X_SLOT)
    line1, line2 = (head + prompting.X_SLOT + slot).split("\n")

    _text(ax, 0.15, 4.15, "1  Prompt addition: the review x fills [X]; [Z] is the answer slot", size=9.5,
          weight="bold")
    _box(ax, 0.15, 3.05, 1.55, 0.75, colour="blue")
    _text(ax, 0.925, 3.93, "template", size=8, ha="center", colour=MUTED)
    _mono_pieces(ax, 0.28, 3.55, [(line1.replace(prompting.X_SLOT, ""), INK), (prompting.X_SLOT, EDGE["blue"])],
                 size)
    _mono_pieces(ax, 0.28, 3.3, [(line2.replace(prompting.Z_SLOT, ""), INK), (prompting.Z_SLOT, EDGE["red"])],
                 size)
    _arrow(ax, (1.8, 3.42), (2.45, 3.42))
    _text(ax, 2.12, 3.6, "fill [X]", size=7.5, ha="center", colour=MUTED)
    x_prime = prompting.Template(prompting.SENTIMENT_TEMPLATE).fill(PROMPT_EXAMPLE)
    first, second = x_prime.split("\n")
    w = max(len(first), len(second)) * adv + 0.3
    _box(ax, 2.55, 3.05, w, 0.75, colour="grey", fill="white")
    _text(ax, 2.55 + w / 2, 3.93, "x′ = f_prompt(x), x from the course's sentiment data", size=8, ha="center",
          colour=MUTED)
    _mono_pieces(ax, 2.7, 3.55, [(first[:-len(PROMPT_EXAMPLE)], INK), (PROMPT_EXAMPLE, EDGE["blue"])], size)
    _mono_pieces(ax, 2.7, 3.3, [(second.replace(prompting.Z_SLOT, ""), INK), (prompting.Z_SLOT, EDGE["red"])], size)

    _text(ax, 0.15, 2.72, "2  Answer search: score every z in Z", size=9.5, weight="bold")
    _text(ax, 4.4, 2.72, "3  Answer mapping: verbalizer v", size=9.5, weight="bold")
    probs = [math.exp(s) for s in PROMPT_SCORES.values()]
    probs = [p / sum(probs) for p in probs]
    best = max(PROMPT_SCORES, key=PROMPT_SCORES.get)
    rows_y = [2.2 - 0.38 * k for k in range(len(PROMPT_SCORES))]
    for label, x, ha in (("z ∈ Z", 0.3, "left"), ("log P(z | x′)", 2.05, "right"), ("P(z | x′) over Z", 2.2, "left")):
        _text(ax, x, 2.48, label, size=7.5, ha=ha, colour=MUTED)
    for (z, score), p, y in zip(PROMPT_SCORES.items(), probs, rows_y):
        weight = "bold" if z == best else "normal"
        _text(ax, 0.3, y, z, size=9, family=MONO, weight=weight)
        _text(ax, 2.05, y, f"{score:.2f}".replace("-", "\u2212"), size=8.5, ha="right", weight=weight)
        colour = {"positive": "green", "neutral": "grey", "negative": "red"}[verbalizer(z)]
        ax.add_patch(Rectangle((2.2, y - 0.1), p * 2.8, 0.2, fc=EDGE[colour] if z == best else FILL[colour],
                               ec=EDGE[colour], lw=0.8))
        _text(ax, 2.25 + p * 2.8, y, f"{p:.2f}", size=8, colour=MUTED)
    label_y = {}
    for label in verbalizer.labels:
        ys = [y for z, y in zip(PROMPT_SCORES, rows_y) if verbalizer(z) == label]
        label_y[label] = sum(ys) / len(ys)
    colours = {"positive": "green", "neutral": "grey", "negative": "red"}
    for label, y in label_y.items():
        _box(ax, 5.75, y - 0.17, 1.1, 0.34, label, colours[label], size=9,
             weight="bold" if label == verbalizer(best) else "normal")
    for z, y in zip(PROMPT_SCORES, rows_y):
        label = verbalizer(z)
        _arrow(ax, (4.85, y), (5.73, label_y[label]), colour=EDGE[colours[label]], lw=2 if z == best else 0.9)
        _text(ax, 4.8, y, z, size=8, ha="right", colour=EDGE[colours[label]], family=MONO)
    _text(ax, 0.15, 0.28, f"ẑ = argmax log P = {best}   →   v({best}) = {verbalizer(best)}   (the review's label: "
          "positive)", size=9)
    _text(ax, WIDTH - 0.1, 0.07, "scores: SmolLM2-135M-Instruct, prompting.answer_search", size=7, ha="right",
          colour=MUTED)
    return fig
