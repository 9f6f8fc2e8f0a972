"""Instruction data: validation, JSONL reading with bad lines, Alpaca templates, the datasets survey."""

import json

import pytest

from course_utils import instructions as ins


def test_validate_example_defaults_input_and_names_the_fix():
    assert ins.validate_example({"instruction": "Add.", "output": "3"})["input"] == ""
    assert ins.validate_example({"instruction": "Add.", "input": None, "output": "3", "x": 1})["x"] == 1
    with pytest.raises(ins.InstructionFormatError, match=r"missing field\(s\) \['output'\]"):
        ins.validate_example({"instruction": "Add."}, "f.jsonl:3")
    with pytest.raises(ins.InstructionFormatError, match="'output' is empty"):
        ins.validate_example({"instruction": "Add.", "output": "  "})
    with pytest.raises(ins.InstructionFormatError, match="must be a string"):
        ins.validate_example({"instruction": "Add.", "input": 3, "output": "x"})
    with pytest.raises(ins.InstructionFormatError, match="JSON object"):
        ins.validate_example(["Add.", "3"])


def test_read_jsonl_skips_bad_lines_with_their_numbers(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"instruction": "a b", "output": "c"}\n{not json\n\n{"instruction": "x"}\n'
                 '{"instruction": "d", "input": "e", "output": "f"}\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="skipped 2 bad line") as w:
        rows = ins.load_instructions(f)
    assert [r["output"] for r in rows] == ["c", "f"]
    assert "line 2: not valid JSON" in str(w[0].message) and "line 4: missing" in str(w[0].message)
    with pytest.warns(UserWarning, match="skipped 1 bad line"):
        rows, problems = ins.read_jsonl(f)  # no validation: only the JSON error
    assert len(rows) == 3 and [n for n, _ in problems] == [2]
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        ins.read_jsonl(tmp_path / "nope.jsonl")


def test_write_and_reload_roundtrip_unicode(tmp_path):
    rows = [{"instruction": "翻译成英文。", "input": "你好", "output": "Hello"}]
    path = ins.save_instructions(rows, tmp_path / "sub" / "out.jsonl")
    assert "你好" in path.read_text(encoding="utf-8")  # kept readable, not \u escapes
    assert ins.load_instructions(path) == rows
    ins.write_jsonl(rows, path, append=True)
    assert len(ins.load_instructions(path)) == 2
    with pytest.raises(ins.InstructionFormatError, match="example 1"):
        ins.save_instructions(rows + [{"instruction": "x"}], tmp_path / "bad.jsonl")


def test_alpaca_json_list(tmp_path):
    f = tmp_path / "alpaca_data.json"
    f.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi!"}] * 3), encoding="utf-8")
    assert len(ins.load_instructions(f, limit=2)) == 2
    f.write_text(json.dumps({"instruction": "x"}), encoding="utf-8")
    with pytest.raises(ins.InstructionFormatError, match="JSON list"):
        ins.load_instructions(f)


def test_alpaca_prompt_matches_the_reference_templates():
    p = ins.alpaca_prompt("Give a synonym.", "happy")
    assert p.startswith("Below is an instruction that describes a task, paired with an input")
    assert p.endswith("### Instruction:\nGive a synonym.\n\n### Input:\nhappy\n\n### Response:\n")
    q = ins.alpaca_prompt("Name a colour.")
    assert "### Input" not in q and q.endswith("### Instruction:\nName a colour.\n\n### Response:\n")
    with pytest.raises(ins.InstructionFormatError, match="Empty instruction"):
        ins.alpaca_prompt("  ")
    assert ins.to_pairs([{"instruction": "Name a colour.", "output": " red "}]) == [(q, "red")]


def test_finetune_reads_instruction_jsonl(tmp_path):
    from course_utils.finetune import load_pairs

    f = ins.save_instructions([{"instruction": "Name a colour.", "output": "red"}], tmp_path / "d.jsonl")
    assert load_pairs(str(f)) == [(ins.alpaca_prompt("Name a colour."), "red")]


def test_open_datasets_survey():
    rows = ins.open_datasets()
    names = " ".join(r["name"] for r in rows)
    for must in ("Alpaca", "Dolly", "OpenAssistant", "FLAN", "ShareGPT", "BELLE", "COIG", "Firefly"):
        assert must in names
    assert all(r["licence"] and r["how_made"] and r["size"] for r in rows)
    table = ins.datasets_table()
    assert table.count("\n") == len(rows) + 1 and table.startswith("| name | year |")
