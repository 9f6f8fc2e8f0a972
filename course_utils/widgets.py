"""Shared ipywidgets playgrounds, with a plain-text fallback where widgets cannot render."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel, where a frontend may render widgets; False in a script or terminal IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def prompt_playground(respond: Callable[[str, int], str], prompt: str = "", max_new_tokens: int = 32):
    """A text box, a length slider and a button that shows ``respond(prompt, max_new_tokens)``.

    The first reply is computed immediately, so the cell shows a real answer even where widgets do not render
    (CI, a plain terminal). Returns the widget (or ``None`` without ipywidgets).
    """
    first = respond(prompt, max_new_tokens)
    try:
        import ipywidgets as w
    except ImportError:
        print(f"(ipywidgets not installed: showing one reply)\n> {prompt}\n{first}")
        return None
    box = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="95%", height="70px"))
    length = w.IntSlider(value=max_new_tokens, min=4, max=256, step=4, description="new tokens")
    go = w.Button(description="Generate", button_style="primary")
    print(first)  # the plain-text reply; the widget's own output area fills in on each click
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            print("…generating")
            reply = respond(box.value, length.value)
            out.clear_output()
            print(reply)

    go.on_click(on_click)
    return w.VBox([box, w.HBox([length, go]), out])


def prompt_learning_playground(model, tok, sentence: str, template: str, verbalizer: str):
    """Chapter 2's playground: edit the sentence, the template and the verbalizer (``"label: w, w; ..."``) and
    see each label word's probability (normalised over the answer space) as a bar chart.

    Draws the chart once for the given values (so the cell shows a result where widgets cannot render) and
    returns the widget (``None`` without ipywidgets).
    """
    import matplotlib.pyplot as plt

    from .prompting import Template, Verbalizer, answer_search

    def draw(sentence: str, template: str, verbalizer: str) -> None:
        try:
            t, v = Template(template), Verbalizer.from_string(verbalizer)
        except ValueError as err:  # show the clear message instead of a traceback while typing
            print(err)
            return
        probs = answer_search(model, tok, t, [sentence], v.answers)[0].softmax(-1)
        fig, ax = plt.subplots(figsize=(6, 2.6))
        colours = [f"C{v.label_index(v(z))}" for z in v.answers]
        ax.bar(v.answers, probs.tolist(), color=colours)
        ax.set_ylabel("P(z | x') over Z")
        winner = v(v.answers[int(probs.argmax())])
        ax.set_title(f"{t.fill(sentence)!r} -> {winner}", fontsize=9)
        plt.show()

    draw(sentence, template, verbalizer)
    try:
        import ipywidgets as w
    except ImportError:
        return None
    boxes = [w.Text(value=sentence, description="x", layout=w.Layout(width="95%")),
             w.Text(value=template, description="template", layout=w.Layout(width="95%")),
             w.Text(value=verbalizer, description="verbalizer", layout=w.Layout(width="95%"))]
    out = w.Output()
    go = w.Button(description="Score", button_style="primary")

    def on_click(_):
        out.clear_output(wait=True)
        with out:
            draw(*(b.value for b in boxes))

    go.on_click(on_click)
    return w.VBox([*boxes, go, out])


def rope_explorer(head_dim: int = 64, base: float = 10000.0, scale: float = 1.0, max_pos: int = 512,
                  train_len: int = 128):
    """Sliders for RoPE's base and interpolation scale, redrawing :func:`plotting.plot_rope_rotations`.

    Draws the default setting once first, so the cell shows a figure where widgets do not render.
    """
    import matplotlib.pyplot as plt

    from .plotting import plot_rope_rotations

    plot_rope_rotations(head_dim, base, scale, max_pos, train_len=train_len)
    plt.show()
    try:
        import ipywidgets as w
    except ImportError:
        print("(ipywidgets not installed: one setting shown)")
        return None

    def draw(log10_base: float, scale: float) -> None:
        plot_rope_rotations(head_dim, 10 ** log10_base, scale, max_pos, train_len=train_len)
        plt.show()

    import math

    return w.interactive(draw, log10_base=w.FloatSlider(value=math.log10(base), min=2, max=7, step=0.25,
                                                        description="log10 base"),
                         scale=w.FloatSlider(value=scale, min=1, max=8, step=0.5, description="scale L'/L"))


def decoding_playground(model, tok, prompt: str, max_new_tokens: int = 64):
    """Chapter 9's playground: temperature, top-p, repetition penalty and no-repeat n-gram controls for one
    prompt, with the reply and its repetition metrics (seq-rep-4, distinct-2, loop) under it.

    Temperature 0 means greedy. The first reply (greedy) is printed at once, so the cell shows something where
    widgets do not render. Returns the widget (or ``None`` without ipywidgets).
    """
    from .decoding import distinct_n, find_loop, seq_rep_n
    from .device import set_seed
    from .models import generate_text

    def run(temperature: float, top_p: float, penalty: float, no_repeat: int) -> str:
        kw = {"repetition_penalty": penalty, "no_repeat_ngram_size": no_repeat}
        if temperature > 0:
            set_seed(0)
            kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        text = generate_text(model, tok, prompt, max_new_tokens=max_new_tokens, **kw)
        loop = find_loop(text)
        return (f"{text}\n\nseq-rep-4 {seq_rep_n(text):.2f}   distinct-2 {distinct_n([text], 2):.2f}   "
                f"loop: {'none' if loop is None else f'{loop.repeats:.1f} x {loop.period} words'}")

    print(run(0.0, 1.0, 1.0, 0))
    try:
        import ipywidgets as w
    except ImportError:
        return None
    temp = w.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.1, description="temperature")
    top_p = w.FloatSlider(value=1.0, min=0.1, max=1.0, step=0.05, description="top-p")
    penalty = w.FloatSlider(value=1.0, min=1.0, max=2.0, step=0.05, description="rep. penalty")
    no_rep = w.IntSlider(value=0, min=0, max=6, description="no-repeat n")
    go = w.Button(description="Generate", button_style="primary")
    out = w.Output()

    def on_click(_):
        out.clear_output()
        with out:
            print("…generating")
            reply = run(temp.value, top_p.value, penalty.value, no_rep.value)
            out.clear_output()
            print(reply)

    go.on_click(on_click)
    return w.VBox([w.HBox([temp, top_p]), w.HBox([penalty, no_rep, go]), out])


# ---------------------------------------------------------------------------------------------------------------
# Chapter 4's LoRA playground: rank, alpha and target modules -> parameters, memory, loss, merge check
# ---------------------------------------------------------------------------------------------------------------

LORA_RANKS = (1, 2, 4, 8, 16, 32, 64)
MIB = 2**20
PAIRS_MAX_LEN = 128  # (prompt, response) pairs given to the playground are tokenised to at most this many tokens


@dataclass(frozen=True)
class LoRARun:
    """One playground run: its settings and what it measured.

    ``peak_mib`` is the estimated peak memory of a LoRA training step (:func:`memory.estimate_from_model`),
    ``full_peak_mib`` the same for full fine-tuning of the same model (``None`` where the model has no
    transformers-style config to read sizes from). ``merge_diff`` is the largest absolute difference between the
    logits of the trained LoRA model and of its merged copy.
    """

    rank: int
    alpha: float
    targets: tuple[str, ...]
    steps: int
    trainable: int
    total: int
    percent: float
    peak_mib: float | None
    full_peak_mib: float | None
    losses: list[float]
    merge_diff: float
    dtype: str
    seconds: float

    def summary(self) -> str:
        """A few lines: parameters, memory, loss, merge check."""
        def mib(x):
            return "n/a (no model config to read sizes from)" if x is None else f"{x:,.1f} MiB"

        return "\n".join([
            f"LoRA r={self.rank}, alpha={self.alpha:g} (scale {self.alpha / self.rank:g}) on {', '.join(self.targets)}",
            f"trainable parameters   {self.trainable:,} of {self.total:,} ({self.percent:.3f}%)",
            f"estimated peak memory  {mib(self.peak_mib)} (full fine-tuning: {mib(self.full_peak_mib)})",
            f"loss                   {self.losses[0]:.3f} -> {self.losses[-1]:.3f} over {self.steps} steps "
            f"({self.seconds:.1f} s)",
            f"merge check            merged = LoRA logits: max |difference| {self.merge_diff:.2e}, within the "
            f"{self.dtype} tolerance"])


def lora_target_names(model) -> list[str]:
    """The names LoRA can target in ``model``: the leaf names of its ``nn.Linear`` modules, the output head left
    out (as peft's ``"all-linear"``); Llama's seven projections first, in their usual order."""
    from torch import nn

    from .memory import LINEAR_NAMES

    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected a torch model (nn.Module), got {type(model).__name__}: pass the loaded model.")
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    wrappers = [n for n, m in model.named_modules() if getattr(m, "wraps_linear", False)]
    found = {n.rpartition(".")[2] for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and m is not head and not any(n.startswith(w + ".") for w in wrappers)}
    return [n for n in LINEAR_NAMES if n in found] + sorted(found - set(LINEAR_NAMES))


def _check_playground_args(model, train_data, rank, alpha, targets, steps, batch_size, seq_len, lr, seed):
    """Refuse bad settings before the model is copied; returns (rank, alpha, targets, seq_len)."""
    from . import validate
    from .sft import check_examples

    rank = validate.positive_int("rank", rank, "pass e.g. rank=8 (typical values: 4, 8, 16)")
    alpha = validate.positive_float("alpha", alpha, f"pass e.g. alpha={2 * rank} (a common choice is 2 * rank)")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        validate.positive_int(name, value, f"pass e.g. {name}={4 if name == 'batch_size' else 20}")
    validate.positive_float("lr", lr, "pass e.g. lr=1e-3")
    validate.non_negative_int("seed", seed, "pass e.g. seed=0")
    valid = lora_target_names(model)
    hint = f"choose from this model's linear layers {valid}, e.g. targets=('q_proj', 'v_proj')"
    if isinstance(targets, str):  # one name, as inject_lora accepts
        targets = (targets,)
    elif isinstance(targets, (set, frozenset)):
        targets = sorted(targets, key=lambda t: valid.index(t) if t in valid else len(valid))
    targets = tuple(dict.fromkeys(validate.str_list("targets", targets, hint)))  # duplicates dropped, order kept
    unknown = [t for t in targets if t not in valid]
    if unknown:
        raise ValueError(f"Unknown LoRA target(s) {unknown}: {hint}.")
    validate.not_a_str("train_data", train_data, "pass the examples from sft.build_dataset(tok, pairs, max_len)")
    validate.non_empty("train_data", train_data, "pass the examples from sft.build_dataset(tok, pairs, max_len)")
    check_examples(model, train_data)
    longest = max(len(e["input_ids"]) for e in train_data)
    seq_len = longest if seq_len is None else validate.positive_int("seq_len", seq_len, f"pass e.g. seq_len={longest}")
    return rank, alpha, targets, seq_len


def lora_playground_run(model, train_data, rank: int = 8, alpha: float = 16.0,
                        targets: Sequence[str] = ("q_proj", "v_proj"), *, steps: int = 20, batch_size: int = 4,
                        seq_len: int | None = None, lr: float = 1e-3, seed: int = 0) -> LoRARun:
    """Train LoRA on a deep copy of ``model`` for a few steps, merge it, and report what it cost and did.

    On the copy (``model`` is not changed): :func:`lora.inject_lora` (rank ``rank``, scale ``alpha / rank``) on the
    linear layers named in ``targets``; :func:`lora.count_parameters`; the estimated peak training memory
    (:func:`memory.estimate_from_model` for ``batch_size`` examples of ``seq_len`` tokens, by default the longest
    example); ``steps`` steps of the course engine (:func:`sft.train`); then :func:`lora.merge_lora`, checking
    that the merged model's logits equal the LoRA model's within the dtype's tolerance
    (:func:`device.assert_close`).

    Args:
        train_data: examples from :func:`sft.build_dataset`.
        targets: leaf names of linear layers, e.g. ``("q_proj", "v_proj")``; see :func:`lora_target_names`.

    Raises:
        TypeError / ValueError: a bad setting (the message names the fix), or a rank larger than a targeted layer
            allows. AssertionError: the merged model's logits differ from the LoRA model's.
    """
    import copy

    import torch

    from .device import assert_close, compute_dtype, model_device, set_seed
    from .lora import count_parameters, inject_lora, merge_lora
    from .memory import estimate_from_model
    from .sft import TrainConfig, train

    rank, alpha, targets, seq_len = _check_playground_args(model, train_data, rank, alpha, targets, steps,
                                                           batch_size, seq_len, lr, seed)

    def peak_mib(m, mode: str) -> float | None:
        try:
            return estimate_from_model(m, mode, batch_size=batch_size, seq_len=seq_len).peak / MIB
        except (AttributeError, TypeError, ValueError):  # no transformers-style config (e.g. TinyGPT)
            return None

    set_seed(seed)  # the same A initialisation for the same settings
    lora_model = inject_lora(copy.deepcopy(model), targets, r=rank, alpha=alpha)
    counts = count_parameters(lora_model)
    lora_peak, full_peak = peak_mib(lora_model, "lora"), peak_mib(model, "full")
    result = train(lora_model, train_data, TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                                       plot=None, progress=False))
    ids = torch.tensor([train_data[0]["input_ids"]], device=model_device(lora_model))
    with torch.no_grad():
        lora_logits = lora_model(input_ids=ids).logits
        merged = merge_lora(lora_model)
        diff = assert_close(merged(input_ids=ids).logits, lora_logits, merged, "the merged and the LoRA logits")
    dtype = str(compute_dtype(merged)).removeprefix("torch.")
    return LoRARun(rank, alpha, targets, steps, counts["trainable"], counts["total"], counts["percent"], lora_peak,
                   full_peak, list(result.losses), diff, dtype, result.seconds)


def _short(targets: Sequence[str]) -> str:
    """``("q_proj", "gate_proj")`` -> ``"q,gate"``: all seven Llama projections fit a table column."""
    return ",".join(t.removesuffix("_proj") for t in targets)


def format_lora_runs(runs: Sequence[LoRARun]) -> str:
    """The runs as a plain-text table, one row each, for comparing configurations."""
    head = f"{'run':>3}  {'r':>3}  {'alpha':>6}  {'targets':<20}  {'steps':>5}  {'trainable':>11}  {'%':>7}  " \
           f"{'peak MiB':>9}  {'loss first -> last':>18}  {'merge |diff|':>12}"
    rows = [head, "-" * len(head)]
    for i, r in enumerate(runs, 1):
        peak = "n/a" if r.peak_mib is None else f"{r.peak_mib:,.1f}"
        loss = f"{r.losses[0]:.3f} -> {r.losses[-1]:.3f}"
        rows.append(f"{i:>3}  {r.rank:>3}  {r.alpha:>6g}  {_short(r.targets):<20}  {r.steps:>5}  "
                    f"{r.trainable:>11,}  {r.percent:>7.3f}  {peak:>9}  {loss:>18}  {r.merge_diff:>12.2e}")
    return "\n".join(rows)


def plot_lora_runs(runs: Sequence[LoRARun], ax=None):
    """Every run's training loss per step, the latest drawn bold; returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 3.2))[1]
    for i, r in enumerate(runs, 1):
        latest = i == len(runs)
        ax.plot(range(1, len(r.losses) + 1), r.losses, lw=2.2 if latest else 1, alpha=1 if latest else 0.5,
                label=f"{i}: r={r.rank} α={r.alpha:g} {_short(r.targets)}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (nats / target token)")
    ax.set_title("LoRA fine-tuning loss, one curve per run")
    ax.legend(fontsize=7)
    return ax


def _plot_png(runs: Sequence[LoRARun]) -> bytes:
    """:func:`plot_lora_runs` as PNG bytes, for an ``Image`` widget (works with any matplotlib backend)."""
    import io

    import matplotlib.pyplot as plt

    ax = plot_lora_runs(runs)
    buf = io.BytesIO()
    ax.figure.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(ax.figure)
    return buf.getvalue()


def lora_playground(model, tok, train_data, rank: int = 8, alpha: float = 16.0,
                    targets: Sequence[str] = ("q_proj", "v_proj"), *, steps: int = 20, batch_size: int = 4,
                    lr: float = 1e-3, seed: int = 0):
    """Chapter 4's LoRA playground: pick the rank, alpha, target modules and steps, press Run, and see the
    trainable parameters, the estimated peak memory, the loss curve and the merge check
    (:func:`lora_playground_run`, on a copy: ``model`` is not changed); a table of all runs compares them.

    ``train_data``: examples from :func:`sft.build_dataset`, or (prompt, response) pairs, tokenised with ``tok``.
    The first run (the given settings) is printed and plotted at once, so the cell shows a result where widgets
    do not render. Returns the widget in a notebook kernel with ipywidgets (its ``runs`` attribute is the list of
    :class:`LoRARun`, ``controls`` its inputs by name), else ``None``.
    """
    import html

    import matplotlib.pyplot as plt

    if len(train_data) and isinstance(train_data[0], (tuple, list)):
        from .sft import build_dataset

        train_data = build_dataset(tok, train_data, PAIRS_MAX_LEN)
    runs: list[LoRARun] = []

    def run(rank, alpha, targets, steps) -> LoRARun:
        runs.append(lora_playground_run(model, train_data, rank, alpha, targets, steps=steps, batch_size=batch_size,
                                        lr=lr, seed=seed))
        return runs[-1]

    print(run(rank, alpha, targets, steps).summary())  # bad settings raise here, before any widget is built
    plot_lora_runs(runs)
    plt.show()
    if not in_notebook_kernel():
        print("(not in a notebook kernel: one run shown; call lora_playground_run(...) to try other settings)")
        return None
    try:
        import ipywidgets as w
    except ImportError:
        print("(ipywidgets not installed: one run shown)")
        return None

    def pre(text: str) -> str:
        return f"<pre style='font-size: 11px'>{html.escape(text)}</pre>"

    controls = {"rank": w.Dropdown(options=sorted(set(LORA_RANKS) | {runs[0].rank}), value=runs[0].rank,
                                   description="rank r"),
                "alpha": w.FloatText(value=runs[0].alpha, description="alpha"),
                "steps": w.IntSlider(value=steps, min=1, max=max(200, steps), description="steps"),
                "targets": w.SelectMultiple(options=lora_target_names(model), value=runs[0].targets,
                                            rows=7, description="targets")}
    go = w.Button(description="Run", button_style="primary")
    summary, curve = w.HTML(), w.Image(format="png")
    history = w.HTML(pre("Runs so far:\n" + format_lora_runs(runs)))

    def on_click(_):
        go.disabled = True
        summary.value = "<i>…training a LoRA copy of the model</i>"
        try:
            run(controls["rank"].value, controls["alpha"].value, tuple(controls["targets"].value),
                controls["steps"].value)
        except (TypeError, ValueError, AssertionError, RuntimeError) as err:  # the message, not a traceback
            summary.value = pre(str(err))
            return
        finally:
            go.disabled = False
        summary.value = pre(runs[-1].summary())
        curve.value = _plot_png(runs)
        history.value = pre("Runs so far:\n" + format_lora_runs(runs))

    go.on_click(on_click)
    ui = w.VBox([w.HBox([controls["rank"], controls["alpha"], controls["steps"]]),
                 w.HBox([controls["targets"], go]), summary, curve, history])
    ui.runs, ui.controls = runs, controls
    return ui
