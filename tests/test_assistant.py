"""The capstone pipeline: launch commands, the single-process fine-tune on a tiny model, loading the LoRA weights
back, merging (identical logits after a save and reload), and the chat turn."""

import copy
import json

import pytest

from course_utils import assistant as asst
from course_utils.config import sizes


def test_setups_and_errors():
    assert sizes("assistant", "smoke").steps < sizes("assistant", "cpu").steps < sizes("assistant", "gpu").steps
    with pytest.raises(ValueError, match="profile"):
        sizes("assistant", "tpu")


def test_launch_commands(tmp_path):
    args = asst.finetune_args(tmp_path, sizes("assistant", "smoke"), "tiny")
    assert args[args.index("--data") + 1] == str(tmp_path / "data" / "instruction_data.jsonl")
    assert args[args.index("--output-dir") + 1] == str(tmp_path / "lora") and "lora" in args
    one = asst.launch_command(args)
    assert one[1:3] == ["-m", "course_utils.finetune"] and one[3:] == args
    acc = asst.launch_command(args, "accelerate", 4)
    assert acc[:4] == ["accelerate", "launch", "--num_processes", "4"] and acc[-len(args):] == args
    assert asst.launch_command(args, "torchrun", 2)[:3] == ["torchrun", "--nproc_per_node", "2"]
    with pytest.raises(ValueError, match="one process"):
        asst.launch_command(args, "python", 2)
    with pytest.raises(ValueError, match="launcher"):
        asst.launch_command(args, "mpirun")
    with pytest.raises(ValueError, match="processes"):
        asst.launch_command(args, "accelerate", 0)


def _write_data(out):
    rows = [{"instruction": f"Say the number {i}.", "input": "", "output": f"The number is {i}."} for i in range(8)]
    path = asst.data_path(out)
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_single_process_finetune_load_merge(tmp_path):
    """The path a learner runs in the notebook and on the command line, on a tiny model: fine-tune in process,
    load the peft adapter onto its base, merge, save, reload: the logits do not change."""
    from transformers import AutoModelForCausalLM

    setup = sizes("assistant", "smoke")
    with pytest.raises(FileNotFoundError, match="run the fine-tune first"):
        asst.load_tuned(tmp_path)
    _write_data(tmp_path)
    result = asst.run_finetune(asst.finetune_args(tmp_path, setup, "tiny"))
    assert len(result.losses) == setup.steps and (tmp_path / "lora" / "result.json").is_file()
    assert (asst.adapter_dir(tmp_path) / "adapter_model.safetensors").is_file()
    tuned, tok = asst.load_tuned(tmp_path)
    trained = {k: v for k, v in tuned.state_dict().items() if "lora_B" in k}
    assert trained and any(v.abs().sum() > 0 for v in trained.values())  # B starts at zero: training moved it
    before = copy.deepcopy(tuned)
    merged_dir = asst.merge_and_save(tuned, tok, tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert asst.max_logit_difference(before, reloaded, tok) < 1e-4
    assert not any("lora" in k for k in reloaded.state_dict())


def test_alpaca_conversation():
    h = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    text = asst.alpaca_conversation(h, "and now?")
    assert text.startswith("Below is an instruction") and text.count("### Instruction:") == 2
    assert "### Response:\nhello\n\n### Instruction:\nand now?\n\n### Response:\n" in text


def test_format_history():
    h = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert asst.format_history(h) == "you: hi\n\nassistant: hello"


@pytest.mark.model
def test_chat_reply_keeps_the_conversation(real_model):
    model, tok = real_model
    history = []
    reply = asst.chat_reply(model, tok, history, "What is the capital of France?", max_new_tokens=12)
    assert reply and [m["role"] for m in history] == ["user", "assistant"] and history[1]["content"] == reply
    asst.chat_reply(model, tok, history, "And of Italy?", max_new_tokens=12)
    assert len(history) == 4
    with pytest.raises(ValueError, match="empty"):
        asst.chat_reply(model, tok, history, "  ")
    assert asst.chat_reply(model, tok, [], "Hi", max_new_tokens=4, template="chat")
    with pytest.raises(ValueError, match="template"):
        asst.chat_reply(model, tok, [], "Hi", template="llama")
    assert asst.chat_widget(model, tok, "Hi", max_new_tokens=4) is not None


def test_split_tasks():
    pool, held = asst.split_tasks(sizes("assistant", "smoke"))
    assert held and all({"instruction", "input", "output"} <= set(r) for r in held)
    assert not {r["instruction"] for r in held} & {t["instruction"] for t in pool}
