"""What the fine-tune command writes is the ecosystem's: a peft adapter that plain peft loads (and that changes the
model), a merged folder that `pipeline` loads, checkpoints that are adapters too, and a clear way out for runs of
an older course version."""

import copy
import json

import pytest
import torch

from course_utils import finetune, sft
from course_utils.finetune import main


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


LORA_RUN = ["--model", "tiny", "--method", "lora", "--steps", "3", "--batch-size", "4", "--limit", "16",
            "--lr", "1e-2"]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    main(LORA_RUN + ["--output-dir", str(out), "--merge"])
    return out


def test_lora_run_is_a_peft_adapter_that_plain_peft_loads(lora_run):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert {"adapter_config.json", "adapter_model.safetensors", "result.json"} <= {p.name for p in lora_run.iterdir()}
    cfg = json.loads((lora_run / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 16 and sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]
    # the tiny base was built in memory, so it is saved beside the adapter and named as the base
    assert cfg["base_model_name_or_path"] == str((lora_run / finetune.BASE_DIR).resolve())
    tok = AutoTokenizer.from_pretrained(lora_run)
    ids = tok("The movie was great", return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(lora_run / finetune.BASE_DIR)
    plain = _logits(base, ids)
    tuned = PeftModel.from_pretrained(base, lora_run)
    assert (_logits(tuned, ids) - plain).abs().max() > 1e-4  # the adapter changes the model
    auto = AutoPeftModelForCausalLM.from_pretrained(lora_run)  # one line, from the adapter folder alone
    torch.testing.assert_close(_logits(auto, ids), _logits(tuned, ids), atol=1e-5, rtol=0)
    course, _ = finetune.load_finetuned(lora_run, device="cpu")
    torch.testing.assert_close(_logits(course, ids), _logits(tuned, ids), atol=1e-5, rtol=0)


def test_merged_folder_loads_with_automodel_and_pipeline(lora_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    merged = lora_run / "merged"
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert not (merged / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in k for k in model.state_dict())
    tok = AutoTokenizer.from_pretrained(merged)
    ids = tok("The movie was great", return_tensors="pt").input_ids
    tuned, _ = finetune.load_finetuned(lora_run, device="cpu")
    torch.testing.assert_close(_logits(model, ids), _logits(tuned, ids), atol=1e-4, rtol=0)
    out = pipeline("text-generation", model=str(merged), device="cpu")("Hello", max_new_tokens=3, do_sample=False)
    assert out[0]["generated_text"].startswith("Hello")


def test_full_run_is_a_model_folder(tmp_path):
    from transformers import AutoModelForCausalLM

    main(["--model", "tiny", "--method", "full", "--steps", "1", "--batch-size", "4", "--limit", "8",
          "--output-dir", str(tmp_path)])
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)  # the folder needs no course code to load
    model, tok = finetune.load_finetuned(tmp_path, device="cpu")
    assert not finetune.is_peft(model) and tok.pad_token_id is not None
    theirs, ours = plain.state_dict(), model.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k].cpu()) for k in ours)


def test_checkpoints_of_a_peft_model_are_adapters_and_resume(tmp_path):
    from peft import get_peft_model

    torch.manual_seed(0)
    base, tok = finetune.build_model("tiny", "full", device=torch.device("cpu"))
    data = sft.build_dataset(tok, finetune.load_pairs("sentiment", limit=16), 64)
    cfg = dict(steps=4, batch_size=4, lr=1e-2, plot=None, progress=False)

    def fresh():
        torch.manual_seed(1)  # the same LoRA initialisation each time
        return get_peft_model(copy.deepcopy(base), finetune.lora_config(4, 8))

    straight = sft.train(fresh(), data, sft.TrainConfig(**cfg), pad_id=tok.pad_token_id)
    c = sft.TrainConfig(**cfg, output_dir=str(tmp_path), checkpoint_every=1)
    sft.train(fresh(), data, c, pad_id=tok.pad_token_id, stop_after=2)
    ckpt = tmp_path / "checkpoint-last"
    assert (ckpt / "adapter_config.json").is_file() and not (ckpt / "trainable.safetensors").exists()
    resumed = sft.train(fresh(), data, c, pad_id=tok.pad_token_id)
    assert resumed.resumed_from == 2 and resumed.losses == pytest.approx(straight.losses, abs=1e-6)
    with pytest.raises(ValueError, match="another run: another model"):
        sft.train(copy.deepcopy(base), data, c, pad_id=tok.pad_token_id)
    (ckpt / "run.json").unlink()  # as written by an older course version: the weights' format is still checked
    with pytest.raises(ValueError, match="peft adapter but the model has none"):
        sft.train(copy.deepcopy(base), data, c, pad_id=tok.pad_token_id)


def test_old_runs_get_a_message_and_convert(tmp_path):
    """A run folder from before (the course's own LoRA in trainable.safetensors) is refused with the way out, and
    --convert rewrites it as a peft adapter that gives the same logits."""
    from safetensors.torch import save_file

    from course_utils.checkpoints import trainable_state
    from course_utils.lora import inject_lora

    torch.manual_seed(0)
    base, tok = finetune.build_model("tiny", "full", device=torch.device("cpu"))
    ours = inject_lora(copy.deepcopy(base), finetune.LORA_TARGETS, r=8, alpha=16)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    save_file(trainable_state(ours), tmp_path / "trainable.safetensors")
    with pytest.raises(finetune.OldRunError, match="--convert"):
        finetune.load_finetuned(tmp_path)
    torch.manual_seed(0)  # the tiny base again (a real run names its model: --model)
    main(["--convert", str(tmp_path), "--model", "tiny"])
    converted, _ = finetune.load_finetuned(tmp_path, device="cpu")
    ids = tok("The movie was great", return_tensors="pt").input_ids
    torch.testing.assert_close(_logits(converted, ids), _logits(ours, ids), atol=1e-5, rtol=0)
    with pytest.raises(FileNotFoundError, match="run the fine-tune first"):
        finetune.load_finetuned(tmp_path / "nothing")


@pytest.mark.model
def test_readme_command_on_the_real_model_loads_with_plain_peft(tmp_path):
    """The README's fine-tune (a few steps of it) on the real model: AutoPeftModelForCausalLM loads the adapter
    from its folder (the base is the offline model's folder), the model has changed, `pipeline` runs the merge."""
    from peft import AutoPeftModelForCausalLM
    from transformers import pipeline

    from course_utils.models import load_model

    main(["--data", "sentiment", "--method", "lora", "--steps", "2", "--batch-size", "2", "--limit", "8",
          "--lr", "1e-3", "--output-dir", str(tmp_path), "--merge"])
    tuned = AutoPeftModelForCausalLM.from_pretrained(tmp_path)
    base, tok = load_model(device="cpu")
    ids = tok("Review: a fine film. Sentiment:", return_tensors="pt").input_ids
    assert (_logits(tuned, ids) - _logits(base, ids)).abs().max() > 1e-4
    out = pipeline("text-generation", model=str(tmp_path / "merged"), device="cpu")("Hi", max_new_tokens=2)
    assert out[0]["generated_text"].startswith("Hi")


def test_a_base_that_cannot_be_reloaded_is_saved_beside_the_adapter(tmp_path, monkeypatch):
    """Hub ids and folders with weights are named; an empty name, a folder of configurations only, or random
    weights ($COURSE_RANDOM_WEIGHTS, the GPU check) make the run save its base."""
    from course_utils.models import RANDOM_WEIGHTS_ENV

    assert finetune._reloadable("HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "config.json").write_text("{}")
    assert not finetune._reloadable(str(tmp_path / "configs")) and not finetune._reloadable("")
    (tmp_path / "configs" / "model.safetensors").write_text("")
    assert finetune._reloadable(str(tmp_path / "configs"))
    monkeypatch.setenv(RANDOM_WEIGHTS_ENV, str(tmp_path))
    assert not finetune._reloadable(str(tmp_path / "configs"))
