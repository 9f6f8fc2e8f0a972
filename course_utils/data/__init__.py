"""Small datasets written for the course (see README.md here for how each was made and its licence)."""

from __future__ import annotations

from importlib.resources import files


def load_lines(name: str) -> list[str]:
    """The non-empty lines of a shipped text file, e.g. ``load_lines("probe_sentences.txt")``.

    Raises:
        FileNotFoundError: naming the files that do exist.
    """
    root = files(__name__)
    path = root / name
    if not path.is_file():
        have = sorted(p.name for p in root.iterdir() if p.name.endswith((".txt", ".jsonl")))
        raise FileNotFoundError(f"No course data file {name!r}; available: {', '.join(have)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
