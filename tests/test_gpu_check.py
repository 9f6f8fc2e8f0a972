"""`make gpu-check` runs on a CUDA machine; here its logic runs on the CPU with a tiny model, every dtype path."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_pack_carries_configs_and_tokenizers_without_weights(gpu_check, tmp_path):
    gpu_check.pack(tmp_path)
    files = {p.relative_to(tmp_path).as_posix(): p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    assert "smollm2-135m-instruct/config.json" in files and "gemma-3-270m/tokenizer.json.gz" in files
    assert not any(f.endswith(".safetensors") for f in files)
    assert sum(files.values()) < 16 * 2**20  # small enough to travel with the tree


def test_dry_run_on_cpu_passes_every_path_and_writes_the_table(gpu_check, tmp_path):
    gpu_check.pack(tmp_path / "models")
    out = tmp_path / "out"
    rc = gpu_check.main(["--device", "cpu", "--source", str(tmp_path / "models"), "--out", str(out),
                         "--notebooks", "none"])
    report = json.loads((out / "gpu_check.json").read_text())
    assert rc == 0, [r for r in report["rows"] if not r["ok"]]
    assert {r["path"] for r in report["rows"]} == set(gpu_check.PATHS)
    assert {r["check"] for r in report["rows"]} == set(gpu_check.CHECKS)
    assert "| check | model | path | result |" in (out / "gpu_check.md").read_text()


@pytest.mark.notebook
def test_notebooks_run_with_random_weights_in_a_16_bit_path(gpu_check, tmp_path):
    """The notebook step: chapter 0 in the smoke profile, its models built from configurations, bf16 weights."""
    gpu_check.pack(tmp_path / "models")
    out = tmp_path / "out"
    rc = gpu_check.main(["--device", "cpu", "--source", str(tmp_path / "models"), "--out", str(out),
                         "--paths", "bf16", "--notebooks", "00"])
    rows = json.loads((out / "gpu_check.json").read_text())["rows"]
    notebook = [r for r in rows if r["check"] == "notebook 00"]
    assert rc == 0 and len(notebook) == 1 and notebook[0]["ok"], notebook


def test_no_gpu_is_a_clear_message(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert gpu_check.main([]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out
