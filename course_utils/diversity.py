"""How diverse is instruction data (chapter 7, the Self-Instruct paper's Figs. 2 and 3): the verbs and objects of
the instructions, and how close each new instruction is to the seed tasks (ROUGE-L)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .self_instruct import SIMILARITY_THRESHOLD

_SKIP = set("a an the me us you your my our some this that these those following given each every any all one two "
            "three few several short new simple list of to for in on with about and or it its their".split())


def verb_object(instruction: str) -> tuple[str, str]:
    """(verb, object) of an imperative instruction, by a heuristic: the first word, and the next word that is
    not a determiner or pronoun. (The paper parses with the Berkeley Neural Parser; this needs no model and is
    right for the common ``Verb [det] object ...`` shape; questions give ``("what", ...)``.)"""
    words = re.findall(r"[a-z]+", instruction.lower())
    if not words:
        return "", ""
    obj = next((w for w in words[1:] if w not in _SKIP), "")
    return words[0], obj


def plot_verb_object(instructions: Sequence[str], top_verbs: int = 10, top_objects: int = 3, ax=None,
                     title: str = "Verbs (inner) and their objects (outer)"):
    """The paper's Fig. 3 in miniature: a two-ring pie of the most common verbs and each verb's objects."""
    import matplotlib.pyplot as plt

    pairs = [verb_object(i) for i in instructions]
    verbs = Counter(v for v, _ in pairs if v).most_common(top_verbs)
    ax = ax or plt.subplots(figsize=(6, 6))[1]
    inner, outer, outer_labels = [], [], []
    for v, n in verbs:
        inner.append(n)
        objs = Counter(o for vv, o in pairs if vv == v and o).most_common(top_objects)
        outer += [c for _, c in objs] + ([n - sum(c for _, c in objs)] if n > sum(c for _, c in objs) else [])
        outer_labels += [o for o, _ in objs] + ([""] if n > sum(c for _, c in objs) else [])
    cmap = plt.get_cmap("tab10")
    ax.pie(inner, radius=0.65, labels=[v for v, _ in verbs], labeldistance=0.45,
           colors=[cmap(i % 10) for i in range(len(verbs))], wedgeprops={"width": 0.4, "edgecolor": "w"},
           textprops={"fontsize": 8})
    ax.pie(outer, radius=1.0, labels=outer_labels, labeldistance=1.02, wedgeprops={"width": 0.35, "edgecolor": "w"},
           colors=["#dddddd"] * len(outer), textprops={"fontsize": 7})
    ax.set_title(title)
    return ax


def plot_similarity_histogram(generated: Sequence[str], seed: Sequence[str], ax=None, bins: int = 20):
    """The paper's Fig. 4: each new instruction's highest ROUGE-L against the seed instructions. Mass near 0.7
    would mean the model mostly paraphrases its prompts; the filter removes everything at 0.7 and above."""
    import matplotlib.pyplot as plt

    from .rouge import pairwise_max_similarity

    sims = pairwise_max_similarity(list(generated), list(seed), progress=False)
    ax = ax or plt.subplots(figsize=(6, 3.2))[1]
    ax.hist(sims, bins=bins, range=(0, 1), color="C0")
    ax.axvline(SIMILARITY_THRESHOLD, color="C3", ls="--", label="filter threshold 0.7")
    ax.set_xlabel("ROUGE-L to the most similar seed instruction")
    ax.set_ylabel("new instructions")
    ax.legend()
    return ax
