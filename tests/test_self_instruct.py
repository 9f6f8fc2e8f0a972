"""Self-Instruct: the pure steps by hand, the model steps with a tiny random model (pipeline, resumability)."""

import json
import random
from collections import Counter

import pytest

from course_utils import diversity
from course_utils import self_instruct as si
from course_utils.config import sizes


@pytest.fixture(scope="module")
def seeds():
    return si.load_seed_tasks()


def test_seed_pool_is_valid_and_diverse(seeds):
    assert len(seeds) >= 60
    n_clf = sum(t["is_classification"] for t in seeds)
    assert 0.1 <= n_clf / len(seeds) <= 0.3  # the original: 26 of 175
    assert all(si.instruction_filter(t["instruction"]) is None for t in seeds)
    from course_utils.rouge import RougePool

    pool = RougePool()
    for t in seeds:  # the pool passes its own diversity filter
        assert pool.is_novel(t["instruction"])
        pool.add(t["instruction"])


def test_load_seed_tasks_original_format_and_errors(tmp_path):
    f = tmp_path / "seed_tasks.jsonl"
    good = {"id": "seed_task_0", "name": "x", "instruction": "Tell a joke about cats.",
            "instances": [{"input": "", "output": "..."}], "is_classification": False}
    f.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "instruction": "y"}) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="line 2: missing field"):
        tasks = si.load_seed_tasks(f)
    assert tasks[0]["instances"] == [{"input": "", "output": "..."}]
    f.write_text(json.dumps({**good, "instances": []}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no valid seed task"), pytest.warns(UserWarning):
        si.load_seed_tasks(f)


def test_prompt_mixes_six_human_and_two_machine():
    seed = [f"Seed task number {i}." for i in range(20)]
    rng = random.Random(0)
    assert all(s in seed for s in si.sample_prompt_instructions(seed, [], rng))  # no machine ones yet: 8 seeds
    chosen = si.sample_prompt_instructions(seed, ["Machine one here.", "Machine two here.", "Three."], rng)
    assert len(chosen) == 8 and sum(c not in seed for c in chosen) == 2
    with pytest.raises(ValueError, match="at least 8 seed"):
        si.sample_prompt_instructions(seed[:3], [], rng)
    p = si.encode_prompt(["Do  this\nthing.", "Do that."])
    assert p == "Come up with a series of tasks:\n1. Do this thing.\n2. Do that.\n3."


def test_parse_instructions_keeps_whole_items_only():
    resp = " Name three rivers in Asia.\n10. Translate the sentence into French.\n11. Summarize the"
    assert si.parse_instructions(resp) == ["Name three rivers in Asia.", "Translate the sentence into French."]
    assert si.parse_instructions(resp, complete=True)[-1] == "Summarize the"
    # chatter after the item ends the list, so the item is whole; so does a blank line
    assert si.parse_instructions(" give me a word.\nSure! Here is one") == ["Give me a word."]
    assert si.parse_instructions(" Name a fruit.\n\n10. ignored") == ["Name a fruit."]
    assert si.parse_instructions(" Name a fruit and a") == []  # cut at the token limit
    assert si.parse_instructions("") == []


@pytest.mark.parametrize("text,reason", [
    ("Add two numbers.", "too short (<= 3 words)"),
    ("word " * 151, "too long (> 150 words)"),
    ("Describe the image in one sentence.", "blacklisted word"),
    ("Explain how to go to the station.", "blacklisted word"),
    ("Write a program that sorts a list.", "'Write a program'"),
    ("- List three fruits please.", "starts with punctuation"),
    ("Écris un poème sur la mer.", "non-ASCII start"),
    ("Explain the mapping between keys and values.", None),  # "map" only as a whole word
])
def test_instruction_filter(text, reason):
    assert si.instruction_filter(text) == reason


def test_classification_shots_are_balanced_and_rest_is_disjoint(seeds):
    shots, rest = si.classification_shots(seeds, n_shots=8)
    assert sum(t["is_classification"] for t in shots) == 4 and len(shots) == 8
    assert len(rest) == len(seeds) - 8 and not {t["id"] for t in shots} & {t["id"] for t in rest}
    assert any(t["is_classification"] for t in rest)  # something left to calibrate on
    p = si.classification_prompt(shots)
    assert p.startswith(si.CLF_HEAD) and p.count("Is it classification? Yes") == 4 and p.count("? No") == 4
    with pytest.raises(ValueError, match="both"):
        si.classification_shots([t for t in seeds if t["is_classification"]])


def test_calibrate_threshold_balances_the_two_kinds():
    import torch

    p = torch.tensor([0.10, 0.15, 0.20, 0.30, 0.35, 0.60])
    labels = [False, False, False, True, True, True]
    assert si.calibrate_threshold(p, labels) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="both kinds"):
        si.calibrate_threshold(p, [True] * 6)


def test_instance_prompts_and_parsing(seeds):
    clf = [t for t in seeds if t["is_classification"]][:2]
    p = si.instance_prompt("Is this email spam? Answer spam or not spam.", True, clf)
    assert p.startswith(si.OUTPUT_FIRST_HEAD) and p.endswith("Class label:") and "Class label:" in p[:-20]
    assert si.parse_instance(" spam\nInput: WIN a free cruise now!\n\nTask: x", True) == {
        "input": "WIN a free cruise now!", "output": "spam"}
    gen = si.instance_prompt("Give an antonym of the word.", False, seeds[:1])
    assert gen.endswith("Task: Give an antonym of the word.\nInput:")
    assert si.parse_instance(" happy\nOutput: sad\n\nTask: next", False) == {"input": "happy", "output": "sad"}
    assert si.parse_instance(" (none)\nOutput: Blue.", False) == {"input": "", "output": "Blue."}
    assert si.parse_instance(" only an input", False) is None
    assert si.parse_instance(" pos\nInput: Great.\nOutput: extra", True) == {"input": "Great.", "output": "pos"}


def test_filter_instances_counts_every_rule():
    rows = [
        {"instruction": "A", "is_classification": False, "instances": [{"input": "x", "output": "y"}]},
        {"instruction": "B", "is_classification": False, "instances": []},
        {"instruction": "C", "is_classification": False, "instances": [{"input": "", "output": " "}]},
        {"instruction": "D", "is_classification": False, "instances": [{"input": "same", "output": "same"}]},
        {"instruction": "E", "is_classification": False, "instances": [{"input": "q", "output": "Answer:"}]},
        {"instruction": "F", "is_classification": True,
         "instances": [{"input": "i", "output": "yes"}, {"input": "i", "output": "no"}]},
        {"instruction": "G", "is_classification": False,
         "instances": [{"input": "i", "output": "o"}, {"input": "i", "output": "o"}]},
    ]
    data, removed = si.filter_instances(rows)
    assert [d["instruction"] for d in data] == ["A", "G"]
    assert removed == Counter({"unparseable instance": 1, "empty output": 1, "input equals output": 1,
                               "field ends with ':' (truncated)": 1, "same input, different outputs": 2,
                               "duplicate instance": 1})


def test_verb_object():
    assert diversity.verb_object("Write a short poem about the sea.") == ("write", "poem")
    assert diversity.verb_object("Give me three examples of mammals.") == ("give", "examples")
    assert diversity.verb_object("!!!") == ("", "")


def test_filter_report_and_plots(tmp_path, seeds):
    import matplotlib

    matplotlib.use("Agg")
    step1 = tmp_path / "s1.jsonl"
    step1.write_text(json.dumps({"request_idx": 0, "prompt_instructions": [], "response": "", "candidates": [
        {"instruction": "a", "kept": True, "reason": ""},
        {"instruction": "b", "kept": False, "reason": "duplicate"},
        {"instruction": "c", "kept": False, "reason": "blacklisted word"}]}) + "\n", encoding="utf-8")
    report = si.FilterReport.from_runs(step1, Counter({"empty output": 2}), kept_examples=1)
    assert (report.proposed, report.kept_instructions) == (3, 1) and report.removed["empty output"] == 2
    assert "3 instructions proposed, 1 kept" in report.table()
    assert len(report.plot().patches) == 3
    ax = diversity.plot_verb_object([t["instruction"] for t in seeds])
    assert len(ax.patches) > 10


@pytest.fixture(scope="module")
def tiny_lm():
    """A random tiny Llama with the default model's tokenizer: the real code path in milliseconds."""
    from transformers import AutoTokenizer

    from course_utils import models
    from course_utils.config import DEFAULT_MODEL

    tok = models.prepare_tokenizer(AutoTokenizer.from_pretrained(models.ensure_cached(DEFAULT_MODEL)))
    return models.tiny_llama(vocab_size=len(tok), max_positions=1024).eval(), tok


def test_bootstrap_is_resumable(tiny_lm, seeds, tmp_path):
    model, tok = tiny_lm
    cfg = si.BootstrapConfig(target=50, max_requests=4, batch_size=2, max_new_tokens=12)
    one_go = tmp_path / "one.jsonl"
    si.generate_instructions(model, tok, seeds, one_go, cfg, progress=False)
    stopped = tmp_path / "stopped.jsonl"
    import dataclasses

    si.generate_instructions(model, tok, seeds, stopped, dataclasses.replace(cfg, max_requests=2), progress=False)
    assert len(stopped.read_text().splitlines()) == 2
    si.generate_instructions(model, tok, seeds, stopped, cfg, progress=False)  # continues at request 2
    assert stopped.read_text() == one_go.read_text()
    rows = [json.loads(line) for line in one_go.read_text().splitlines()]
    assert [r["request_idx"] for r in rows] == [0, 1, 2, 3]
    assert all(len(r["prompt_instructions"]) == 8 for r in rows)
    si.generate_instructions(model, tok, seeds, one_go, cfg, progress=False)  # nothing left to do
    assert len(one_go.read_text().splitlines()) == 4


def test_classification_and_instances_resume(tiny_lm, seeds, tmp_path):
    model, tok = tiny_lm
    instr = ["Tell whether the sentence is a question. Answer yes or no.", "Suggest a name for a bakery."]
    out = tmp_path / "clf.jsonl"
    first = si.identify_classification(model, tok, instr[:1], seeds, out, progress=False)
    both = si.identify_classification(model, tok, instr, seeds, out, progress=False)
    assert both[instr[0]] == first[instr[0]] and len(out.read_text().splitlines()) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(0 <= r["p_yes"] <= 1 for r in rows) and rows[0]["threshold"] == rows[1]["threshold"]
    inst_out = tmp_path / "inst.jsonl"
    got = si.generate_instances(model, tok, both, seeds, inst_out, max_new_tokens=8, n_demos=1, progress=False)
    assert [r["instruction"] for r in got] == instr
    again = si.generate_instances(model, tok, both, seeds, inst_out, max_new_tokens=8, n_demos=1, progress=False)
    assert again == got and len(inst_out.read_text().splitlines()) == 2


def test_setups_and_heldout_split(seeds):
    targets = [sizes("self_instruct", name).target for name in ("smoke", "cpu", "gpu")]
    assert targets == sorted(targets) and len(set(targets)) == 3
    with pytest.raises(ValueError, match="profile"):
        sizes("self_instruct", "tpu")
    pool, held = si.split_seed_tasks(seeds, 12)
    assert len(held) == 12 and len(pool) == len(seeds) - 12
    assert not {t["id"] for t in pool} & {t["id"] for t in held}
    assert 1 <= sum(t["is_classification"] for t in held) <= 4  # in proportion (13 of 72)
    assert si.split_seed_tasks(seeds, 12) == (pool, held)  # fixed seed
    with pytest.raises(ValueError, match="hold out fewer"):
        si.split_seed_tasks(seeds, len(seeds) - 3)


def test_bootstrap_end_to_end_on_a_tiny_model(tiny_lm, seeds, tmp_path):
    model, tok = tiny_lm
    import dataclasses

    setup = dataclasses.replace(sizes("self_instruct", "smoke"), target=3, max_requests=2, batch_size=2)
    data, report = si.bootstrap(model, tok, seeds, tmp_path, setup, progress=False)
    assert (tmp_path / "instruction_data.jsonl").exists()
    assert report.proposed == report.kept_instructions + sum(
        n for why, n in report.removed.items() if why in {"too short (<= 3 words)", "too long (> 150 words)",
                                                          "blacklisted word", "'Write a program'", "duplicate",
                                                          "starts with punctuation", "non-ASCII start",
                                                          "ROUGE-L >= 0.7 to the pool", "target met"})
    assert all({"instruction", "input", "output"} <= set(d) for d in data)


def test_similarity_histogram(seeds):
    import matplotlib

    matplotlib.use("Agg")
    ax = diversity.plot_similarity_histogram(["Suggest a packing list for a hiking trip.", "Name a river."],
                                      [t["instruction"] for t in seeds])
    assert sum(p.get_height() for p in ax.patches) == 2


def test_command_line_runs_and_resumes(tiny_lm, tmp_path, monkeypatch, capsys):
    import course_utils.models

    monkeypatch.setattr(course_utils.models, "load_model", lambda name=None, **kw: tiny_lm)
    si.main(["--out", str(tmp_path), "--profile", "smoke", "--target", "2"])
    out = capsys.readouterr().out
    assert "instructions proposed" in out and "python -m course_utils.finetune --data" in out
    first = (tmp_path / "step1_instructions.jsonl").read_text()
    si.main(["--out", str(tmp_path), "--profile", "smoke", "--target", "2"])
    assert (tmp_path / "step1_instructions.jsonl").read_text() == first  # nothing redone
