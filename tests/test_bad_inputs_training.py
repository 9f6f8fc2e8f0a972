"""Bad inputs to the training chapters' modules (PEFT, memory, data, instruction data, SFT on chats, DPO,
alignment, knowledge, forgetting, sample optimisation, the capstone, config) are refused where they are made, with
a message that names the value and the fix (see ``tests/refusals.py``)."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path

import pytest
import torch
from refusals import Case, check_refused, params
from torch import nn

from course_utils import (
    alignment,
    assistant,
    chat,
    config,
    data,
    data_scaling,
    dpo,
    forgetting,
    instructions,
    knowledge,
    lora,
    memory,
    new_knowledge,
    peft_methods,
    prefix,
    sample_optimization,
    self_instruct,
    slick,
)
from course_utils.adapters import BottleneckAdapter, adapter_parameter_count, inject_adapters
from course_utils.data.corpus import encode_bytes, load_corpus

NAN, INF = float("nan"), float("inf")
_TMP = tempfile.TemporaryDirectory(prefix="course-bad-inputs-")


def _file(name: str, content: str | bytes) -> Path:
    """A file with ``content`` in a temporary folder (written when the case runs)."""
    path = Path(_TMP.name) / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _folder() -> Path:
    path = Path(_TMP.name) / "a_folder"
    path.mkdir(exist_ok=True)
    return path


def _tiny():
    from course_utils.models import tiny_llama

    return tiny_llama()


def _examples(n: int = 2) -> list[dict]:
    return [{"input_ids": [1, 5, 6, 7], "labels": [-100, 5, 6, 7]} for _ in range(n)]


def _dpo_data(n: int = 2) -> list[dict]:
    return [{"chosen": {"input_ids": [1, 5, 6], "labels": [-100, 5, 6]},
             "rejected": {"input_ids": [1, 5, 9], "labels": [-100, 5, 9]}} for _ in range(n)]


def _zeros(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(n), torch.zeros(n)


ROW = {"instruction": "Name a colour.", "input": "", "output": "Blue is a colour of the sky."}
ROWS = [ROW, {"instruction": "Add 2 and 2.", "input": "", "output": "The sum is 4."}]
CONV = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
SMOL = memory.MODEL_SHAPES["SmolLM2-135M"]
PEOPLE = knowledge.make_people(4)
PAIR = {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Blue blue blue."}


def _facts() -> list[dict]:
    return [{"question": f"Question number {i}?", "answer": f"answer {i}", "slick": slick.CATEGORIES[i % 4]}
            for i in range(12)]


CASES = [
    # --- LoRA (chapter 4) ---
    Case("lora_rank_true", lambda: lora.LoRALinear(nn.Linear(16, 16), r=True, alpha=16), ["True", "r=8"]),
    Case("lora_rank_float", lambda: lora.LoRALinear(nn.Linear(16, 16), r=8.0, alpha=16), ["8.0", "r=8"]),
    Case("lora_rank_above_layer", lambda: lora.LoRALinear(nn.Linear(16, 4), r=8, alpha=16), ["r=8", "r <= 4"]),
    Case("lora_alpha_inf", lambda: lora.LoRALinear(nn.Linear(16, 16), r=4, alpha=INF), ["inf", "alpha=8"]),
    Case("lora_alpha_str", lambda: lora.LoRALinear(nn.Linear(16, 16), r=4, alpha="8"), ["'8'", "alpha=8"]),
    Case("lora_alpha_bool", lambda: lora.LoRALinear(nn.Linear(16, 16), r=4, alpha=True), ["True", "alpha=8"]),
    Case("lora_dropout_str", lambda: lora.LoRALinear(nn.Linear(16, 16), r=4, alpha=8, dropout="0.1"),
         ["dropout", "'0.1'"]),
    Case("inject_lora_targets_none", lambda: lora.inject_lora(_tiny(), target_modules=None),
         ["None", "target_modules=('q_proj', 'v_proj')"]),
    Case("inject_lora_targets_numbers", lambda: lora.inject_lora(_tiny(), target_modules=[0, 1]),
         ["[0, 1]", "target_modules=('q_proj', 'v_proj')"]),
    Case("inject_lora_rank_above_v_proj", lambda: lora.inject_lora(_tiny(), ("v_proj",), r=64, alpha=128),
         ["r=64", "v_proj", "r <= 32"]),
    Case("inject_lora_not_a_model", lambda: lora.inject_lora("HuggingFaceTB/SmolLM2-135M"),
         ["str", "nn.Module"]),
    Case("effective_rank_list", lambda: lora.effective_rank([3.0, 1.0]), ["list", "singular_values"]),
    Case("effective_rank_energy_true", lambda: lora.effective_rank(torch.ones(3), energy=True),
         ["energy", "True", "0.9"]),
    Case("singular_values_list", lambda: lora.singular_values([[1.0, 0.0], [0.0, 1.0]]),
         ["list", "delta_weight"]),
    # --- adapters, prefix tuning, soft prompts, the comparison ---
    Case("adapter_bottleneck_true", lambda: BottleneckAdapter(32, bottleneck=True), ["True", "bottleneck=16"]),
    Case("adapter_bottleneck_float", lambda: BottleneckAdapter(32, bottleneck=2.5), ["2.5", "bottleneck=16"]),
    Case("adapter_count_negative_hidden", lambda: adapter_parameter_count(-64, 16, 2), ["hidden_size", "-64"]),
    Case("soft_prompt_tokens_true", lambda: prefix.soft_prompt(_tiny(), num_virtual_tokens=True),
         ["True", "num_virtual_tokens=20"]),
    Case("soft_prompt_init_text_number",
         lambda: prefix.soft_prompt(_tiny(), 4, init_text=5, tokenizer=lambda t: {"input_ids": [1]}),
         ["init_text", "str", "5"]),
    Case("remaining_context_float", lambda: prefix.remaining_context(_tiny(), 2.5), ["2.5", "e.g. 20"]),
    Case("strip_virtual_tokens_true", lambda: prefix.strip_virtual_tokens(torch.zeros(1, 5, 3), True),
         ["True", "e.g. 8"]),
    Case("prefix_count_negative", lambda: prefix.prefix_parameter_count(_tiny().config, -5),
         ["num_virtual_tokens", "-5"]),
    Case("method_lora_without_rank", lambda: peft_methods.Method("lora"), ["size", "0", "LoRA rank"]),
    Case("method_negative_lr", lambda: peft_methods.Method("full", lr=-1e-4), ["lr", "-0.0001", "lr=1e-3"]),
    Case("compare_methods_no_data",
         lambda: peft_methods.compare_methods(None, None, [], ["Great."], ["positive"], steps=1, batch_size=1,
                                              template="{text}", label_words={"positive": ["good"]}),
         ["train_data", "empty"]),
    Case("format_rows_empty", lambda: peft_methods.format_rows([]), ["rows", "empty"]),
    # --- memory ---
    Case("memory_batch_nan", lambda: memory.estimate_finetune_memory(10**9, batch_size=NAN), ["batch_size", "nan"]),
    Case("memory_seq_len_fraction", lambda: memory.estimate_finetune_memory(10**9, seq_len=512.5, **SMOL),
         ["seq_len", "512.5"]),
    Case("memory_params_inf", lambda: memory.estimate_finetune_memory(INF), ["n_params", "inf", "7e9"]),
    Case("memory_kv_heads_negative", lambda: memory.estimate_finetune_memory(10**9, **{**SMOL, "num_kv_heads": -1}),
         ["num_kv_heads", "-1"]),
    Case("memory_table_one_name", lambda: memory.memory_table("SmolLM2-135M"),
         ["models", "['SmolLM2-135M']"]),
    Case("measure_step_time_steps_float", lambda: memory.measure_training_step(_tiny(), 1, 8, time_steps=1.5),
         ["time_steps", "1.5"]),
    # --- shipped data and corpus ---
    Case("sentiment_limit_zero", lambda: data.load_sentiment("test", limit=0), ["limit", "0", "limit=None"]),
    Case("sentiment_limit_negative", lambda: data.load_sentiment("test", limit=-3), ["limit", "-3", "limit=None"]),
    Case("sentiment_limit_true", lambda: data.load_sentiment("test", limit=True), ["limit", "True"]),
    Case("balanced_zero", lambda: data.balanced(data.load_sentiment("dev"), 0), ["n", "0", "n=16"]),
    Case("load_lines_number", lambda: data.load_lines(5), ["5", "probe_sentences.txt"]),
    Case("corpus_path_folder", lambda: load_corpus("train", path=_folder()), ["a_folder", "the file inside it"]),
    Case("corpus_path_empty", lambda: load_corpus("train", path=_file("empty.txt", "")), ["empty.txt", "empty"]),
    Case("corpus_not_utf8", lambda: load_corpus("train", path=_file("latin1.txt", "caf\xe9 au lait".encode("latin-1"))),
         ["latin1.txt", "UTF-8"]),
    Case("encode_bytes_number", lambda: encode_bytes(5), ["int", "load_corpus('train')"]),
    # --- data-constrained scaling ---
    Case("repetitions_true",
         lambda: dataclasses.replace(config.sizes("data_scaling", "smoke"), repetitions=(1, True)),
         ["True", "(1, 2, 4, 8, 16)"]),
    Case("scaling_batch_zero", lambda: dataclasses.replace(config.sizes("data_scaling", "smoke"), batch_size=0),
         ["batch_size", "0"]),
    Case("effective_data_negative_tokens", lambda: data_scaling.effective_data(-100, 2), ["unique_tokens", "-100"]),
    Case("effective_data_nan_repetitions", lambda: data_scaling.effective_data(100, NAN), ["repetitions", "nan"]),
    Case("unique_windows_seq_len_zero", lambda: data_scaling.unique_windows(torch.arange(100), 0, 5),
         ["seq_len", "0", "seq_len=64"]),
    # --- instruction data (chapter 7) ---
    Case("read_jsonl_folder", lambda: instructions.read_jsonl(_folder()), ["a_folder", "the file inside it"]),
    Case("read_jsonl_json_array",
         lambda: instructions.read_jsonl(_file("array.jsonl", '[\n  {"instruction": "a", "output": "b"}\n]\n')),
         ["array.jsonl", "line 1", "JSON array", "one JSON object per line"]),
    Case("read_jsonl_not_utf8", lambda: instructions.read_jsonl(_file("latin1.jsonl", b'{"output": "caf\xe9"}\n')),
         ["latin1.jsonl", "line 1", "UTF-8"]),
    Case("load_instructions_empty_file", lambda: instructions.load_instructions(_file("empty.jsonl", "")),
         ["empty.jsonl", "no instruction example", "empty"]),
    Case("load_instructions_all_bad",
         lambda: instructions.load_instructions(_file("numbers.jsonl", '{"instruction": 5, "output": 6}\n')),
         ["numbers.jsonl", "none of its 1 line(s)", "'instruction' and 'output'"]),
    Case("load_instructions_limit_zero",
         lambda: instructions.load_instructions(_file("one.jsonl", '{"instruction": "a", "output": "b"}\n'),
                                                limit=0), ["limit", "0", "limit=None"]),
    Case("load_instructions_limit_negative",
         lambda: instructions.load_instructions(_file("one.jsonl", '{"instruction": "a", "output": "b"}\n'),
                                                limit=-1), ["limit", "-1"]),
    Case("load_instructions_bad_json_list",
         lambda: instructions.load_instructions(_file("alpaca.json", '[\n{"instruction": "a",}\n]')),
         ["alpaca.json", "line 2", ".jsonl"]),
    Case("alpaca_prompt_number", lambda: instructions.alpaca_prompt(5), ["instruction", "5", "str"]),
    Case("alpaca_prompt_input_none", lambda: instructions.alpaca_prompt("Add.", None), ["input", "None", "''"]),
    Case("to_pairs_one_row", lambda: instructions.to_pairs(ROW), ["dict", "[example]"]),
    # --- Self-Instruct ---
    Case("bootstrap_temperature_zero", lambda: self_instruct.BootstrapConfig(temperature=0),
         ["temperature", "0", "0.7"]),
    Case("bootstrap_top_p_above_one", lambda: self_instruct.BootstrapConfig(top_p=1.5), ["top_p", "1.5", "0.5"]),
    Case("bootstrap_more_machine_than_prompt", lambda: self_instruct.BootstrapConfig(n_prompt=2, n_machine=4),
         ["n_machine=4", "n_prompt=2"]),
    Case("sample_prompt_more_machine_than_prompt",
         lambda: self_instruct.sample_prompt_instructions([f"Seed {i}." for i in range(9)],
                                                          [f"New {i}." for i in range(4)], random.Random(0),
                                                          n_prompt=2, n_machine=4),
         ["n_machine=4", "n_prompt=2"]),
    Case("classification_shots_zero", lambda: self_instruct.classification_shots(self_instruct.load_seed_tasks(), 0),
         ["n_shots", "0", "n_shots=16"]),
    Case("calibrate_threshold_mismatch",
         lambda: self_instruct.calibrate_threshold(torch.tensor([0.2, 0.8, 0.5]), [True, False]),
         ["p_yes has 3", "labels has 2"]),
    Case("generate_instances_list_of_tasks",
         lambda: self_instruct.generate_instances(None, None, ["Write a poem."], self_instruct.load_seed_tasks(),
                                                  Path(_TMP.name) / "step3.jsonl"),
         ["list", "identify_classification"]),
    Case("generate_instructions_seed_strings",
         lambda: self_instruct.generate_instructions(None, None, ["Tell a joke about cats."],
                                                     Path(_TMP.name) / "step1.jsonl"),
         ["seed task 0", "load_seed_tasks()"]),
    Case("split_seed_tasks_float", lambda: self_instruct.split_seed_tasks(self_instruct.load_seed_tasks(), 2.5),
         ["n_heldout", "2.5"]),
    Case("self_instruct_target_zero",
         lambda: dataclasses.replace(config.sizes("self_instruct", "smoke"), target=0), ["target", "0"]),
    # --- chat SFT (chapter 8) ---
    Case("conversation_str", lambda: chat.check_conversation("Hello there"), ["str", "list of messages"]),
    Case("conversation_one_message", lambda: chat.check_conversation(CONV[0]), ["dict", "list of messages"]),
    Case("tokenize_conversation_negative_max_len",
         lambda: chat.tokenize_conversation(None, CONV, -5, template=chat.SMOLLM2_TRAINING_TEMPLATE),
         ["max_len", "-5", "max_len=256"]),
    Case("pack_fractional_max_len", lambda: chat.pack(_examples(), 2.5), ["2.5", "max_len=512"]),
    Case("conversations_bad_json", lambda: chat.load_conversations(_file("bad_json.jsonl", "{messages: []}\n")),
         ["bad_json.jsonl:1", "not valid JSON"]),
    Case("conversations_json_array",
         lambda: chat.load_conversations(_file("chat_array.jsonl", '[\n{"messages": []}\n]\n')),
         ["chat_array.jsonl:1", "JSON array"]),
    Case("conversations_empty_file", lambda: chat.load_conversations(_file("empty_chat.jsonl", "\n")),
         ["empty_chat.jsonl", "no conversation"]),
    Case("conversations_row_not_object", lambda: chat.load_conversations(_file("numbers_chat.jsonl", "5\n")),
         ["numbers_chat.jsonl:1", "not a JSON object"]),
    Case("conversations_folder", lambda: chat.load_conversations(_folder()), ["a_folder", "JSONL file"]),
    Case("conversations_limit_zero",
         lambda: chat.load_conversations(_file("one_chat.jsonl", '{"messages": %s}\n' % str(CONV).replace("'", '"')),
                                         limit=0), ["limit", "0", "limit=None"]),
    Case("is_chat_file_bad_json", lambda: chat.is_chat_file(_file("bad_json2.jsonl", "{not json\n")),
         ["bad_json2.jsonl:1", "not valid JSON"]),
    Case("pairs_fewer_than_turns", lambda: chat.conversations_from_pairs([("Hi", "Hello!")], 2),
         ["1 pairs", "turns=2"]),
    Case("pairs_turns_true", lambda: chat.conversations_from_pairs([("Hi", "Hello!")], True), ["turns", "True"]),
    Case("trl_finetune_no_rows", lambda: chat.trl_finetune(None, None, [], None), ["non-empty", "0"]),
    # --- DPO (chapter 9) ---
    Case("dpo_beta_inf", lambda: dpo.dpo_loss(*_zeros(), *_zeros(), beta=INF), ["beta", "inf", "beta=0.1"]),
    Case("dpo_beta_true", lambda: dpo.dpo_loss(*_zeros(), *_zeros(), beta=True), ["beta", "True", "beta=0.1"]),
    Case("dpo_rows_number_prompt", lambda: dpo.check_rows([{**PAIR, "prompt": 5}]), ["'prompt'", "5", "int"]),
    Case("dpo_rows_tuple", lambda: dpo.check_rows([("Name a colour.", "Blue.", "Blue blue.")]),
         ["Pair 0", "tuple", "'prompt'"]),
    Case("dpo_rows_one_dict", lambda: dpo.check_rows(PAIR), ["dict", "[row]"]),
    Case("dpo_tokenize_max_len_zero", lambda: dpo.tokenize_pairs(None, [PAIR], 0), ["max_len", "0", "max_len=192"]),
    Case("train_dpo_negative_lr",
         lambda: dpo.train_dpo(_tiny(), _dpo_data(), 0, steps=1, lr=-1e-4, reference_logps=_zeros(), progress=False),
         ["lr", "-0.0001", "lr=1e-4"]),
    Case("train_dpo_text_rows",
         lambda: dpo.train_dpo(_tiny(), [PAIR], 0, steps=1, reference_logps=_zeros(1), progress=False),
         ["tokenize_pairs"]),
    Case("preference_stats_beta_zero",
         lambda: dpo.preference_stats(_tiny(), _dpo_data(), 0, beta=0, reference_logps=_zeros()),
         ["beta", "0", "beta=0.1"]),
    Case("corrupted_pairs_kinds_str", lambda: dpo.corrupted_pairs(ROWS, kinds="repeated"),
         ["kinds", "['repeated']"]),
    Case("win_rate_shapes", lambda: dpo.win_rate(torch.ones(3), torch.ones(1)), ["(3,)", "(1,)"]),
    Case("mean_and_se_no_runs", lambda: dpo.mean_and_se([], "EOS rate"), ["runs", "empty"]),
    Case("mean_and_se_unknown_key", lambda: dpo.mean_and_se([{"EOS rate": 0.5}], "eos"), ["'eos'", "EOS rate"]),
    # --- alignment (chapter 9) ---
    Case("auc_strings", lambda: alignment.auc("abc", "abd"), ["good", "str"]),
    Case("select_random_k_true", lambda: alignment.select_random(ROWS, True), ["k", "True"]),
    Case("select_longest_k_float", lambda: alignment.select_longest(ROWS, 1.5), ["k", "1.5"]),
    Case("pass_at_k_float", lambda: alignment.pass_at_k(5, 2, 1.5), ["k", "1.5"]),
    Case("format_table_empty", lambda: alignment.format_table([]), ["rows", "empty"]),
    Case("teacher_messages_empty", lambda: alignment.teacher_messages("  "), ["instruction", "request"]),
    Case("token_ranks_shapes", lambda: alignment.token_ranks(torch.zeros(3, 5), torch.zeros(2, dtype=torch.long)),
         ["(3, 5)", "(2,)"]),
    Case("token_shift_top_unknown_kind", lambda: alignment.TokenShift([]).top("Shifted"),
         ["'Shifted'", "shifted"]),
    Case("token_shift_bin_zero",
         lambda: alignment.TokenShift([alignment.ShiftedResponse("p", [1], ["a"], [1])]).by_position(0),
         ["bin_size", "0", "bin_size=8"]),
    Case("corrupt_responses_empty", lambda: alignment.corrupt_responses([]), ["rows", "empty"]),
    Case("corrupt_responses_no_output", lambda: alignment.corrupt_responses([{"instruction": "x"}]),
         ["Row 0", "'output'"]),
    Case("best_of_n_temperature_zero", lambda: alignment.best_of_n(None, None, ROWS, n=2, temperature=0),
         ["temperature", "0", "temperature=0.8"]),
    Case("judge_scores_strings", lambda: alignment.judge_scores(None, None, "abc", "xyz"),
         ["instructions", "str", "['abc']"]),
    Case("evaluate_answers_no_rows", lambda: alignment.evaluate_answers(None, None, [], "base"), ["rows", "empty"]),
    # --- knowledge (chapter 10) ---
    Case("make_people_true", lambda: knowledge.make_people(True), ["True", "n=200"]),
    Case("make_people_float", lambda: knowledge.make_people(2.5), ["2.5", "n=200"]),
    Case("split_people_nan", lambda: knowledge.split_people(PEOPLE, NAN), ["fraction", "nan", "0.5"]),
    Case("qa_pairs_one_attribute", lambda: knowledge.qa_pairs(PEOPLE, "major"), ["attributes", "['major']"]),
    Case("bio_corpus_rewrites_float", lambda: knowledge.bio_corpus(PEOPLE, rewrites=2.5), ["rewrites", "2.5"]),
    Case("majority_baseline_nobody", lambda: knowledge.majority_baseline([], PEOPLE), ["train_people", "empty"]),
    Case("bios_setup_qa_evals_zero", lambda: dataclasses.replace(config.sizes("knowledge", "smoke"), qa_evals=0),
         ["qa_evals", "0"]),
    Case("word_tokenizer_number", lambda: knowledge.WordTokenizer().encode(5), ["int", "pass the text"]),
    Case("extraction_variants_str", lambda: knowledge.extraction_experiment(config.sizes("knowledge", "smoke"),
                                                                            "single"), ["variants", "['single']"]),
    # --- SliCK and new knowledge (chapter 10) ---
    Case("slick_temperature_inf", lambda: slick.SliCKSizes(n_sets=2, temperature=INF), ["temperature", "inf"]),
    Case("slick_samples_float", lambda: slick.SliCKSizes(n_sets=2, n_samples=2.5), ["n_samples=2.5"]),
    Case("exemplar_sets_zero", lambda: slick.exemplar_sets(_facts(), 0, 4), ["n_sets", "0", "n_sets=10"]),
    Case("exemplar_sets_negative_k", lambda: slick.exemplar_sets(_facts(), 2, -1), ["k", "-1", "k=4"]),
    Case("score_answers_one_temperature",
         lambda: slick.score_answers(None, None, ["Q: x\nA:"], [[[1]]], temperatures=0.5),
         ["temperatures", "0.5", "(0.5,)"]),
    Case("accepted_answers_number", lambda: slick.accepted_answers({"question": "Moon landing?", "answer": 1969}),
         ["'answer'", "1969", "'1969'"]),
    Case("sample_answers_zero", lambda: slick.sample_answers(None, None, "Q: x\nA:", n=0, temperature=0.5),
         ["n", "0", "n=16"]),
    Case("new_knowledge_lora_r_zero",
         lambda: dataclasses.replace(config.sizes("new_knowledge", "smoke"), lora_r=0), ["lora_r", "0"]),
    Case("new_knowledge_fraction_above_one",
         lambda: dataclasses.replace(config.sizes("new_knowledge", "smoke"), unknown_fractions=(1.5,)),
         ["unknown_fraction", "1.5", "[0, 1]"]),
    Case("training_set_float", lambda: new_knowledge.training_set(_facts(), 2.5, 0.0), ["n=2.5", "n=32"]),
    Case("split_train_test_category_str", lambda: new_knowledge.split_train_test(_facts(), 1, categories="Unknown"),
         ["categories", "['Unknown']"]),
    # --- forgetting and sample optimisation (chapter 8) ---
    Case("l2sp_alpha_inf", lambda: forgetting.L2SP(_tiny(), INF), ["alpha", "inf"]),
    Case("fisher_max_batches_zero", lambda: forgetting.fisher_diagonal(_tiny(), _examples(), max_batches=0),
         ["max_batches", "0", "max_batches=8"]),
    Case("mix_data_no_task", lambda: forgetting.mix_data([], ["general"], 0.5), ["task", "empty"]),
    Case("mitigation_negative_lr", lambda: forgetting.Mitigation("x", lr=-1e-4), ["lr", "-0.0001", "lr=1e-4"]),
    Case("mitigation_all_general", lambda: forgetting.Mitigation("x", general_fraction=1.0),
         ["general_fraction", "1.0", "0.5"]),
    Case("hard_weights_boost_nan", lambda: sample_optimization.hard_example_weights(torch.ones(3), boost=NAN),
         ["boost", "nan", "boost=3.0"]),
    Case("hard_weights_no_losses", lambda: sample_optimization.hard_example_weights(torch.tensor([])),
         ["losses", "example_losses"]),
    Case("with_weights_nan", lambda: sample_optimization.with_weights(_examples(), [1.0, NAN]),
         ["weights[1]", "nan"]),
    Case("example_losses_batch_zero", lambda: sample_optimization.example_losses(_tiny(), _examples(), batch_size=0),
         ["batch_size", "0", "batch_size=8"]),
    Case("lora_run_mine_after_all_steps",
         lambda: sample_optimization.lora_run(_tiny(), None, _examples(), steps=4, mine_after=4),
         ["mine_after=4", "1..3"]),
    # --- the capstone and config ---
    Case("assistant_rank_zero", lambda: assistant.AssistantSetup("smoke", 4, 4, 3e-4, 160, rank=0), ["rank", "0"]),
    Case("assistant_unknown_profile", lambda: assistant.AssistantSetup("fast", 4, 4, 3e-4, 160),
         ["'fast'", "smoke"]),
    Case("launch_processes_float", lambda: assistant.launch_command([], "accelerate", 2.5),
         ["processes", "2.5", "processes=2"]),
    Case("launch_args_str", lambda: assistant.launch_command("--steps 4"), ["args", "str"]),
    Case("chat_reply_number", lambda: assistant.chat_reply(None, None, [], 5), ["message", "int"]),
    Case("chat_reply_history_none", lambda: assistant.chat_reply(None, None, None, "Hi"),
         ["history", "NoneType", "history = []"]),
    Case("profile_name_number", lambda: config.profile_name(5), ["5", "smoke"]),
    Case("sizes_section_list", lambda: config.sizes(["dpo"]), ["['dpo']", "course"]),
]


@pytest.mark.parametrize("case", params(CASES))
def test_refused(case):
    check_refused(case)


def test_inject_lora_refusal_leaves_the_model_untouched(tiny):
    """A rank too large for one target is refused before any layer is wrapped or frozen."""
    import copy

    model = copy.deepcopy(tiny)
    with pytest.raises(ValueError, match="r <= 32"):
        lora.inject_lora(model, ("q_proj", "v_proj"), r=64, alpha=128)
    assert not lora.lora_layers(model) and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="bottleneck must be >= 1"):
        inject_adapters(model, bottleneck=0)
    assert all(p.requires_grad for p in model.parameters())


def test_a_byte_order_mark_is_read_not_skipped(tmp_path):
    """Editors on Windows start UTF-8 files with a BOM: the first row is read, not dropped as a bad line."""
    rows = instructions.load_instructions(_write(tmp_path / "bom.jsonl", '{"instruction": "a", "output": "b"}\n'))
    assert rows == [{"instruction": "a", "input": "", "output": "b"}]
    path = _write(tmp_path / "bom_chat.jsonl", '{"messages": [{"role": "user", "content": "Hi"}, '
                                               '{"role": "assistant", "content": "Hello!"}]}\n')
    assert chat.load_conversations(path) == [CONV] and chat.is_chat_file(path)
    assert load_corpus("train", path=_write(tmp_path / "bom.txt", "text " * 40)).startswith("text")


def _write(path: Path, text: str) -> Path:
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path


def test_limits_still_mean_what_they_did():
    """Valid limits are unchanged: None is everything, a positive limit is class-balanced."""
    assert len(data.load_sentiment("dev", limit=None)) == len(data.load_sentiment("dev"))
    few = data.load_sentiment("dev", limit=3)
    assert len(few) == 3 and len({e.label for e in few}) == 3
