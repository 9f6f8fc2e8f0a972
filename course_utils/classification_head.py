"""Chapter 2: a classification head on the frozen model, the baseline prompt learning is measured against.

Both read the same thing, the model's final hidden state at the last token. A prompt scores it against the rows
of the pretrained LM head that belong to the verbalizer's words: no new weights, no labelled data. A
classification head is a new ``nn.Linear`` on that hidden state: it starts from random weights and learns only
from the labelled examples it is given. :func:`learning_curve` measures the head's test accuracy as the labels
grow (k per class), to set beside the prompt's zero-shot accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import validate
from .device import model_device
from .models import check_fits
from .prompting import Template

OPTIMIZERS = ("lbfgs", "adamw")


# ---- features ----------------------------------------------------------------------------------------------------

def last_token_features(model, tok, texts: Sequence[str], *, template: Template | str | None = None,
                        batch_size: int = 16) -> torch.Tensor:
    """``[N, hidden]`` float32 features on the CPU: the final hidden state (after the last norm, what the LM head
    reads) at each text's last token. The model stays frozen: no gradients.

    Texts are batched and padded on ``tok.padding_side`` (right when the tokenizer has none); padding is masked
    and position ids count real tokens only, so a text gets the same feature alone or in a batch, padded left
    or right.

    Args:
        template: with e.g. ``"Review: [X]\\nSentiment: [Z]"``, read the text before the answer slot instead of
            the bare text: the very hidden state from which the prompt predicts its answer.
    """
    texts = validate.str_list("texts", texts, "pass the texts to encode, e.g. [e.text for e in train]")
    batch_size = validate.positive_int("batch_size", batch_size, "pass e.g. batch_size=16")
    if template is not None:
        template = template if isinstance(template, Template) else Template(template)
        texts = [template.split(x)[0] for x in texts]  # the context before the answer slot
    ids = [tok(t).input_ids for t in texts]
    empty = next((t for t, i in zip(texts, ids) if not i), None)
    if empty is not None:
        raise ValueError(f"The text {empty!r} has no tokens, so it has no last token to read: drop it, or give it "
                         "at least one word.")
    side = getattr(tok, "padding_side", "right")
    validate.one_of("tok.padding_side", side, ("left", "right"))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    decoder = model.get_decoder()  # the transformer without its LM head: no logits over the vocabulary
    dev = model_device(model)
    out = []
    for start in range(0, len(ids), batch_size):
        batch = ids[start:start + batch_size]
        L = max(map(len, batch))
        check_fits(model, L)
        rows = [[pad] * (L - len(i)) + i if side == "left" else i + [pad] * (L - len(i)) for i in batch]
        real = [[0] * (L - len(i)) + [1] * len(i) if side == "left" else [1] * len(i) + [0] * (L - len(i))
                for i in batch]
        mask = torch.tensor(real, device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift the real tokens' positions
        last = torch.tensor([L - 1 if side == "left" else len(i) - 1 for i in batch], device=dev)
        with torch.no_grad():
            hidden = decoder(input_ids=torch.tensor(rows, device=dev), attention_mask=mask, position_ids=pos,
                             use_cache=False).last_hidden_state
        out.append(hidden[torch.arange(len(batch), device=dev), last].float().cpu())
    return torch.cat(out)


# ---- the head ----------------------------------------------------------------------------------------------------

class LinearHead(nn.Module):
    """Standardise each feature with the training set's mean and std, then one ``nn.Linear`` to class logits.

    Standardising matters: an LM's hidden state has a few dimensions hundreds of times larger than the rest,
    which would otherwise dominate the head's first steps.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, classes: Sequence[str]):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.classes = list(classes)
        self.linear = nn.Linear(mean.numel(), len(self.classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[N, hidden]`` features -> ``[N, |classes|]`` logits."""
        return self.linear((features - self.mean) / self.std)

    def predict(self, features: torch.Tensor) -> list[str]:
        """The predicted class name of each row."""
        _check_features(features, self.mean.numel())
        with torch.no_grad():
            return [self.classes[i] for i in self(features).argmax(-1).tolist()]


def fit_head(features: torch.Tensor, labels: Sequence[str], *, classes: Sequence[str] | None = None,
             optimizer: str = "lbfgs", steps: int = 100, lr: float | None = None, weight_decay: float = 1e-2,
             seed: int = 0) -> LinearHead:
    """Train a :class:`LinearHead` on frozen features: full-batch cross-entropy for ``steps`` steps.

    Args:
        classes: the class names in logit order (default: the labels in order of first appearance).
        optimizer: ``"lbfgs"`` (default; ``steps`` iterations with a line search, ``lr`` 1) or ``"adamw"``
            (``steps`` updates, ``lr`` 0.1).
        weight_decay: L2 strength on the weights. With a few examples per class the classes are separable
            in hundreds of dimensions, and without it the weights grow without bound.
        seed: seeds the head's random initial weights (the global random state is left as it was).
    """
    labels = validate.str_list("labels", labels, "pass one class name per row of features")
    features = _check_features(features)
    validate.same_length("features", features, "labels", labels, "pass one label per row of features")
    classes = list(dict.fromkeys(labels)) if classes is None else validate.str_list("classes", classes)
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be at least 2 distinct names, got {classes}: pass e.g. "
                         "classes=['positive', 'neutral', 'negative'].")
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"The label {unknown[0]!r} is not one of the classes {classes}: add it, or fix the label.")
    validate.one_of("optimizer", optimizer, OPTIMIZERS)
    steps = validate.positive_int("steps", steps, "pass e.g. steps=100")
    lr = validate.positive_float("lr", lr, "pass e.g. lr=0.01") if lr is not None else \
        (1.0 if optimizer == "lbfgs" else 0.1)
    weight_decay = validate.non_negative_float("weight_decay", weight_decay, "pass e.g. weight_decay=0.01")
    seed = validate.integer("seed", seed, "pass e.g. seed=0")

    # one example of a class has no spread: its std is 0 there, so the floor keeps the division finite
    std = features.std(0, correction=0).clamp(min=1e-6) if len(features) > 1 else torch.ones(features.shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearHead(features.mean(0), std, classes)
    y = torch.tensor([classes.index(label) for label in labels])

    def loss() -> torch.Tensor:
        return F.cross_entropy(head(features), y) + 0.5 * weight_decay * head.linear.weight.pow(2).sum()

    params = list(head.linear.parameters())
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            value = loss()
            value.backward()
            return value

        opt.step(closure)
    else:  # the L2 term is in the loss, so AdamW's own (decoupled) decay stays off
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        for _ in range(steps):
            opt.zero_grad()
            loss().backward()
            opt.step()
    return head.eval()


def head_accuracy(head: LinearHead, features: torch.Tensor, labels: Sequence[str]) -> float:
    """Fraction of rows whose predicted class equals the gold label."""
    if not isinstance(head, LinearHead):
        raise TypeError(f"head must be a LinearHead, got {type(head).__name__}: train one with fit_head(...).")
    labels = validate.str_list("labels", labels, "pass one gold class name per row of features")
    validate.same_length("features", features, "labels", labels, "pass one label per row of features")
    predicted = head.predict(features)
    return sum(p == y for p, y in zip(predicted, labels)) / len(labels)


def _check_features(features, width: int | None = None) -> torch.Tensor:
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a tensor [N, hidden], got {type(features).__name__}: compute them with "
                        "last_token_features(model, tok, texts).")
    if features.dim() != 2 or not len(features) or (width is not None and features.shape[1] != width):
        want = f"[N, {width}]" if width is not None else "[N, hidden] with N >= 1"
        raise ValueError(f"features must be {want}, got shape {tuple(features.shape)}: compute them with "
                         "last_token_features(model, tok, texts), with the model the head was trained on.")
    if not features.is_floating_point() or not torch.isfinite(features).all():
        raise ValueError("features must be finite floating-point numbers: compute them with last_token_features.")
    return features.float()


# ---- the learning curve ------------------------------------------------------------------------------------------

def sample_per_class(labels: Sequence[str], k: int, seed: int = 0) -> list[int]:
    """Indices of ``k`` examples of each class, drawn at random (seeded), in their original order."""
    labels = validate.str_list("labels", labels, "pass one class name per example")
    k = validate.positive_int("k", k, "pass e.g. k=4 (examples per class)")
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    short = {y: len(idx) for y, idx in by_class.items() if len(idx) < k}
    if short:
        raise ValueError(f"k={k} examples per class, but the class {next(iter(short))!r} has only "
                         f"{min(short.values())}: pass k <= {min(map(len, by_class.values()))}.")
    g = torch.Generator().manual_seed(seed)
    return sorted(idx[j] for idx in by_class.values() for j in torch.randperm(len(idx), generator=g)[:k].tolist())


def learning_curve(model, tok, train: Sequence, test: Sequence, sizes: Sequence[int] = (1, 2, 4, 8, 16, 32),
                   seeds: Sequence[int] = (0, 1, 2), *, template: Template | str | None = None,
                   batch_size: int = 16, **fit_kwargs) -> dict[int, list[float]]:
    """The head's test accuracy as the labelled data grows: ``{k: [accuracy for each seed]}``, k examples per
    class drawn from ``train`` (a fresh draw and a fresh initial head per seed).

    The features are computed once (:func:`last_token_features`, with ``template`` and ``batch_size``); ``fit_kwargs``
    go to :func:`fit_head`.

    Args:
        train, test: labelled examples, objects with ``.text`` and ``.label`` (``course_utils.data.Example``).
    """
    for name, data in (("train", train), ("test", test)):
        validate.not_a_str(name, data, "pass a list of Example(text, label), e.g. load_sentiment('train')")
        validate.non_empty(name, data, "pass at least one Example(text, label)")
        bad = next((ex for ex in data if not (isinstance(getattr(ex, "text", None), str)
                                              and isinstance(getattr(ex, "label", None), str))), None)
        if bad is not None:
            raise TypeError(f"{name} must hold Example(text, label) objects, got {bad!r}: load them with "
                            "load_sentiment(...).")
    validate.not_a_str("sizes", sizes, "pass the examples per class to try, e.g. sizes=(1, 4, 16)")
    validate.non_empty("sizes", sizes, "pass e.g. sizes=(1, 4, 16)")
    sizes = [validate.positive_int("each of sizes", k, "pass e.g. sizes=(1, 4, 16)") for k in sizes]
    validate.not_a_str("seeds", seeds, "pass e.g. seeds=(0, 1, 2)")
    validate.non_empty("seeds", seeds, "pass e.g. seeds=(0, 1, 2)")
    seeds = [validate.integer("each of seeds", s, "pass e.g. seeds=(0, 1, 2)") for s in seeds]
    y_train, y_test = [ex.label for ex in train], [ex.label for ex in test]
    classes = list(dict.fromkeys(y_train))
    for k in sizes:  # before the forward passes: a mistake costs no model time
        sample_per_class(y_train, k)
    unseen = sorted(set(y_test) - set(classes))
    if unseen:
        raise ValueError(f"The test label {unseen[0]!r} never occurs in train, so no head can predict it: "
                         "use splits of the same task.")
    x_train = last_token_features(model, tok, [ex.text for ex in train], template=template, batch_size=batch_size)
    x_test = last_token_features(model, tok, [ex.text for ex in test], template=template, batch_size=batch_size)
    curve = {}
    for k in sizes:
        curve[k] = []
        for seed in seeds:
            idx = sample_per_class(y_train, k, seed)
            head = fit_head(x_train[idx], [y_train[i] for i in idx], classes=classes, seed=seed, **fit_kwargs)
            curve[k].append(head_accuracy(head, x_test, y_test))
    return curve
