"""The course's static figures, ``figures/<stem>.svg``, drawn by code so they can be regenerated.

``python -m course_utils figures`` (``make figures``) rewrites them; ``tests/test_figures.py`` fails when a committed
SVG differs from what this code draws. Each figure is one small function returning a matplotlib ``Figure``, and
:data:`FIGURES` maps its file stem to that function and the alt text lessons use: ``![alt](../figures/stem.svg)``.

Numbers and rules come from the course's own modules (masks, positions, memory, slick, alignment, self_instruct,
prompting) wherever they exist, so a change there shows up as a stale figure rather than a wrong one. The SVGs are
byte-deterministic: a fixed hash salt for element ids, no date or version stamp, fixed sizes (7 inches wide,
about 700 px), and the font matplotlib ships (DejaVu Sans) drawn as paths, so no viewer needs it installed.

The drawing functions live in topic modules (``architecture``, ``finetuning``, ``positions_data``) over the shared
palette and helpers of ``_common``; this module holds the registry, the SVG output and the command line.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from course_utils.course import chapters

from ._common import EDGE, FILL, INK, MONO, MONO_ADVANCE, MUTED, STYLE, WIDTH
from .architecture import (
    PROMPT_EXAMPLE,
    PROMPT_SCORES,
    attention_masks,
    encoder_decoder_vs_decoder_only,
    prompt_learning_pipeline,
)
from .finetuning import adapter_and_prefix, lora, memory_breakdown
from .positions_data import (
    SHIFT_COLOURS,
    SHIFT_EXAMPLE,
    alibi,
    interpolation_vs_extrapolation,
    rope_rotation,
    self_instruct_loop,
    slick_categories,
    token_shift,
)

__all__ = [
    "FIGURES", "render", "draw_all", "main",
    "WIDTH", "STYLE", "INK", "MUTED", "EDGE", "FILL", "MONO", "MONO_ADVANCE",
    "attention_masks", "encoder_decoder_vs_decoder_only", "PROMPT_EXAMPLE", "PROMPT_SCORES", "prompt_learning_pipeline",
    "lora", "adapter_and_prefix", "memory_breakdown",
    "rope_rotation", "alibi", "interpolation_vs_extrapolation", "self_instruct_loop", "SHIFT_EXAMPLE", "SHIFT_COLOURS",
    "token_shift", "slick_categories",
]


# ---------------------------------------------------------------------------------------------------------------
# Registry, output, command line
# ---------------------------------------------------------------------------------------------------------------

#: file stem -> (function drawing the figure, the alt text a lesson gives it)
FIGURES: dict[str, tuple[Callable[[], Figure], str]] = {
    "attention_masks": (
        attention_masks,
        "Three attention masks over prefix tokens x and target tokens y: the causal decoder's lower triangle, the "
        "prefix decoder's mask that opens the prefix in both directions, and the encoder-decoder's bidirectional "
        "encoder, cross-attention and causal decoder blocks."),
    "encoder_decoder_vs_decoder_only": (
        encoder_decoder_vs_decoder_only,
        "An encoder-decoder reads the source with a bidirectional encoder and writes the target with a decoder "
        "that adds cross-attention to the encoder's states, while a decoder-only model reads prompt and answer as "
        "one sequence under causal self-attention."),
    "prompt_learning_pipeline": (
        prompt_learning_pipeline,
        "Prompt learning in three stages: a template puts a review after Review: and leaves the answer slot "
        "after Sentiment:, the language model scores every answer word, and the verbalizer maps the best word, "
        "great, to the label positive."),
    "lora": (
        lora,
        "LoRA adds a trained low-rank path B A beside the frozen weight W0, so h = W0 x + (alpha/r) B A x with A "
        "random and B zero at the start, and after training W = W0 + (alpha/r) B A is merged into one matrix."),
    "adapter_and_prefix": (
        adapter_and_prefix,
        "One Transformer layer with a bottleneck adapter after attention and after the MLP, each before its "
        "residual add, and prefix tuning's n learned keys and values placed in front of the input's keys and "
        "values."),
    "memory_breakdown": (
        memory_breakdown,
        "Bytes per parameter in mixed-precision AdamW: weights 2, gradients 2, fp32 master copy 4, Adam m 4 and "
        "Adam v 4 make 16 for every parameter in full fine-tuning, while LoRA's frozen parameters cost 2 and only "
        "its trained ones pay the other 14."),
    "rope_rotation": (
        rope_rotation,
        "RoPE turns each pair of query and key dimensions by m times theta_i at position m, so a query at m and a "
        "key at n meet at the angle (m - n) theta_i and their score depends only on the distance."),
    "alibi": (
        alibi,
        "ALiBi adds -m (i - j) to the score of query i and key j and masks future keys, shown for one head with "
        "slope 1/2, beside the geometric slopes 1/2 to 1/256 of eight heads."),
    "interpolation_vs_extrapolation": (
        interpolation_vs_extrapolation,
        "For an input four times the trained length, extrapolation uses positions never seen in training, "
        "while position interpolation scales every position by L/L' so all of them fall inside the trained "
        "range."),
    "self_instruct_loop": (
        self_instruct_loop,
        "The Self-Instruct loop: prompts sampled from the task pool make the model write new instructions, those "
        "that pass the filters and have ROUGE-L below 0.7 against the pool join it, and each is classified, "
        "given instances and filtered into instruction data."),
    "token_shift": (
        token_shift,
        "The token distribution shift: each token of the aligned model's answer is ranked under the base model, "
        "rank 1 unshifted, rank 2 to 3 marginal and above 3 shifted, with an example answer whose opener and list "
        "marker shift while its content does not."),
    "slick_categories": (
        slick_categories,
        "SliCK's decision rules: a fact is HighlyKnown when the greedy answer is right under every exemplar set, "
        "MaybeKnown under some, WeaklyKnown when only sampling is sometimes right, and Unknown otherwise."),
}


def _check_stems(stems: Sequence[str] | None) -> list[str]:
    if stems is None:
        return list(FIGURES)
    if isinstance(stems, str):
        raise TypeError(f"stems must be a list of figure names, got the string {stems!r}: pass e.g. [{stems!r}].")
    unknown = [s for s in stems if s not in FIGURES]
    if unknown:
        raise ValueError(f"Unknown figure(s) {unknown}: choose from {sorted(FIGURES)}.")
    return list(stems)


def render(stem: str) -> bytes:
    """The SVG of one figure, exactly as :func:`draw_all` writes it, with its alt text as the SVG's ``<title>``."""
    (stem,) = _check_stems([stem])
    draw, alt = FIGURES[stem]
    with matplotlib.rc_context(STYLE):
        fig = draw()
        buf = io.BytesIO()
        # Title becomes the SVG's <title> (what screen readers announce); no date or version: identical bytes
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Title": alt})
    return buf.getvalue()


def draw_all(out_dir: str | Path | None = None, stems: Sequence[str] | None = None) -> list[Path]:
    """Write ``<out_dir>/<stem>.svg`` for every figure (or only ``stems``); ``out_dir`` defaults to figures/ at the
    repository root. Returns the paths written."""
    if out_dir is not None and not isinstance(out_dir, (str, Path)):
        raise TypeError(f"out_dir must be a folder path, got {type(out_dir).__name__}: pass e.g. out_dir='figures'.")
    out = Path(out_dir) if out_dir is not None else chapters.ROOT / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in _check_stems(stems):
        path = out / f"{stem}.svg"
        path.write_bytes(render(stem))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils figures [STEM ...] [--out DIR]``: redraw the course's figures."""
    parser = argparse.ArgumentParser(prog="python -m course_utils figures",
                                     description="Redraw the course's static figures as SVG (figures/*.svg).")
    parser.add_argument("stems", nargs="*", metavar="STEM", help=f"only these figures (of: {', '.join(FIGURES)})")
    parser.add_argument("--out", default=None, help="output folder (default: figures/ at the repository root)")
    args = parser.parse_args(argv)
    try:
        paths = draw_all(args.out, args.stems or None)
    except ValueError as err:
        parser.error(str(err))
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KB)")
    return 0
