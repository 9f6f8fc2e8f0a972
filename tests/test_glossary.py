"""The bilingual glossary: the seeds' terms are in it, its chapters are real, GLOSSARY.md is generated and current."""

import json
import re

import pytest

from course_utils.course import chapters, glossary, lessons

SEED_TERMS = {"提示学习": "prompt learning", "语境学习": "in-context learning", "答案映射": "verbalizer",
              "高效微调": "parameter-efficient fine-tuning", "位置插值": "position interpolation",
              "指令数据": "instruction data", "幻觉": "hallucination", "早停": "early stopping",
              "灾难性遗忘": "catastrophic forgetting", "复读机": "repetition problem",
              "上下文窗口": "context window", "软提示": "soft prompt", "知识蒸馏": "knowledge distillation",
              "涌现能力": "emergent abilities"}


def test_glossary_has_the_seed_terms_with_english_and_definitions():
    terms = glossary.load_glossary()
    assert len(terms) >= 50
    for zh, en in SEED_TERMS.items():
        hits = [t for t in terms if zh in t.zh]
        assert hits, f"no glossary entry uses the seeds' term {zh}"
        assert any(en in t.en.lower() for t in hits), f"{zh} should be the term for {en!r}"
    one_sentence = [t.en for t in terms if not t.definition.endswith(".")
                    or re.search(r"\. [A-Z]", t.definition.replace("e.g. ", "").replace("i.e. ", ""))]
    assert not one_sentence, f"give a one-sentence definition: {one_sentence}"


def test_every_glossary_chapter_is_a_real_chapter():
    stems = {c.stem for c in chapters.CHAPTERS}
    for t in glossary.load_glossary():
        assert t.chapters and set(t.chapters) <= stems, t.en


@pytest.mark.parametrize("entry, message", [
    ({"en": "x", "zh": "叉", "definition": "d.", "chapters": ["42_nope"]}, "unknown chapters"),
    ({"en": "x", "zh": "", "definition": "d.", "chapters": ["01_decoder_llms"]}, "missing 'zh'"),
])
def test_validate_glossary_names_the_problem(entry, message):
    with pytest.raises(ValueError, match=message):
        glossary.validate_glossary([entry])
    with pytest.raises(ValueError, match="listed twice"):
        ok = {"en": "x", "zh": "叉", "definition": "d.", "chapters": ["01_decoder_llms"]}
        glossary.validate_glossary([ok, dict(ok, en="X")])


def test_glossary_markdown_is_sorted_and_links_chapters():
    text = glossary.glossary_markdown()
    rows = [r for r in text.splitlines() if r.startswith("| ") and not r.startswith("| English")]
    names = [r.split(" | ")[0][2:] for r in rows]
    assert names == sorted(names, key=str.lower) and len(rows) == len(glossary.load_glossary())
    assert "[2](notebooks/02_prompt_learning.ipynb" in text
    raw = json.loads(glossary.GLOSSARY_JSON.read_text(encoding="utf-8"))
    assert len(raw) == len(rows)


def test_glossary_md_is_not_stale():
    path = glossary.glossary_path()
    assert path.exists() and path.read_text(encoding="utf-8") == glossary.glossary_markdown(), (
        "run `make notebooks` to regenerate GLOSSARY.md")
    assert path not in lessons.stale_files()
