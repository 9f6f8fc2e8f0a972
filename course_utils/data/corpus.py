"""A text corpus for training tiny language models from scratch: the Python language reference, as bytes.

``python_docs.txt.gz`` holds the text of Python 3.11's ``pydoc_data.topics`` (the help pages behind
``help("if")``, ``help("specialnames")``...): about 460 KB of plain English technical prose with code. Python
ships it, so it needs no download; the file freezes one version so every learner gets the same numbers.
Licence: Python Software Foundation License 2 (the Python documentation's). Rebuild it with
``python -m course_utils.data.corpus`` (paragraphs repeated across topics are kept once, so no paragraph is in
two splits).

Tiny models read it byte by byte (vocabulary 256, no tokenizer to train): :func:`encode_bytes`.
"""

from __future__ import annotations

import gzip
from importlib.resources import files

import torch

CORPUS_FILE = "python_docs.txt.gz"
SPLITS = ("train", "val", "test")
_SEPARATOR = "\n\n=====\n\n"  # between topics in the file
_BLOCK_CHARS = 8000


def build_text() -> str:
    """The corpus text from this Python's ``pydoc_data.topics``, topics sorted, repeated paragraphs dropped."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    out = []
    for name in sorted(topics):
        paragraphs = []
        for para in topics[name].strip().split("\n\n"):
            key = para.strip()
            if key and key not in seen:
                seen.add(key)
                paragraphs.append(para)
        if paragraphs:
            out.append("\n\n".join(paragraphs))
    return _SEPARATOR.join(out)


def load_corpus(split: str = "train", path: str | None = None) -> str:
    """One split of the corpus as text (about 80 / 10 / 10 %).

    The text is cut into blocks of about 8,000 characters at paragraph ends; block ``i`` goes to ``val`` when
    ``i % 10 == 4``, to ``test`` when ``i % 10 == 9``, else to ``train``, so every split samples every topic.

    Args:
        split: ``train``, ``val`` or ``test``.
        path: any UTF-8 text file instead (e.g. tiny-shakespeare when online): split 90 / 5 / 5 % by position.

    Raises:
        ValueError: an unknown split.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {SPLITS}.")
    if path is not None:
        from course_utils.validate import read_text_file

        text = read_text_file("path", path)
        if not text.strip():
            raise ValueError(f"The corpus file {str(path)!r} is empty: pass a text file with something in it.")
        a, b = int(0.9 * len(text)), int(0.95 * len(text))
        return {"train": text[:a], "val": text[a:b], "test": text[b:]}[split]
    raw = gzip.decompress((files(__package__) / CORPUS_FILE).read_bytes()).decode("utf-8")
    blocks, current = [], []
    for para in raw.replace(_SEPARATOR, "\n\n").split("\n\n"):
        current.append(para)
        if sum(len(p) for p in current) >= _BLOCK_CHARS:
            blocks.append("\n\n".join(current))
            current = []
    blocks.append("\n\n".join(current))
    which = {"val": (4,), "test": (9,), "train": (0, 1, 2, 3, 5, 6, 7, 8)}[split]
    return "\n\n".join(b for i, b in enumerate(blocks) if i % 10 in which)


def encode_bytes(text: str) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as a ``long`` tensor (vocabulary 256: any language, no tokenizer)."""
    if not isinstance(text, str):
        raise TypeError(f"encode_bytes takes a str, got {type(text).__name__}: pass e.g. load_corpus('train').")
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def decode_bytes(ids) -> str:
    """The inverse of :func:`encode_bytes`; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD."""
    return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


if __name__ == "__main__":
    from pathlib import Path

    target = Path(__file__).with_name(CORPUS_FILE)
    data = build_text().encode("utf-8")
    target.write_bytes(gzip.compress(data, mtime=0))
    print(f"wrote {target} ({len(data):,} bytes of text)")
