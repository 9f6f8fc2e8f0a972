"""Resume that cannot mix runs: another run's checkpoint is refused, checkpoints are replaced atomically, a stop
(SIGINT, SIGTERM) finishes its step, saves and says how to resume, and a killed command resumes bit for bit."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from course_utils import checkpoints, sft
from course_utils.finetune import build_model, load_pairs


@pytest.fixture(scope="module")
def tiny_lora():
    """A random tiny Llama with a peft LoRA (dropout 0.1: the run depends on the random state) and 32 examples."""
    torch.manual_seed(0)
    model, tok = build_model("tiny", "lora", rank=4, alpha=8, device=torch.device("cpu"), dropout=0.1)
    return model, tok, sft.build_dataset(tok, load_pairs("sentiment", limit=32), 48)


def cfg(out=None, **kw) -> sft.TrainConfig:
    base = dict(steps=6, batch_size=4, lr=1e-2, warmup_steps=1, plot=None, progress=False, output_dir=out,
                checkpoint_every=2 if out else 0)
    return sft.TrainConfig(**{**base, **kw})


def _weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_signal_finishes_the_step_saves_and_resumes_bit_for_bit(tiny_lora, tmp_path, monkeypatch):
    model, tok, data = tiny_lora
    straight = copy.deepcopy(model)
    r1 = sft.train(straight, data, cfg(), pad_id=tok.pad_token_id)
    real_step, calls = sft.training_step, []

    def step_with_stop_button(*args, **kwargs):  # the notebook's stop button (SIGINT) pressed inside step 3
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(sft, "training_step", step_with_stop_button)
    with pytest.raises(checkpoints.TrainingStopped) as info:
        sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id)
    monkeypatch.undo()
    stop = info.value
    assert isinstance(stop, KeyboardInterrupt) and stop.exit_code == 130 and stop.step == 3
    assert "Run the same training again to resume" in str(stop)
    state = json.loads((tmp_path / "checkpoint-last" / "trainer_state.json").read_text())
    assert state["step"] == 3 == len(state["losses"])  # the step it landed in was finished, counter and all
    resumed = copy.deepcopy(model)
    r2 = sft.train(resumed, data, cfg(tmp_path), pad_id=tok.pad_token_id)
    assert r2.resumed_from == 3 and r2.losses == r1.losses  # exactly: same batches, same dropout masks
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_sigterm_gives_exit_code_143(tiny_lora, tmp_path):
    model, tok, data = tiny_lora

    def terminate(step, loss):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(checkpoints.TrainingStopped) as info:
        sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id, on_step=terminate)
    assert info.value.exit_code == 143 and info.value.signal_name == "SIGTERM"
    assert json.loads((tmp_path / "checkpoint-last" / "trainer_state.json").read_text())["step"] == 1
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # the handlers come back


def test_a_second_ctrl_c_stops_at_once_without_a_half_done_checkpoint(tiny_lora, tmp_path):
    model, tok, data = tiny_lora
    real_step = sft.training_step

    def step_pressed_twice(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        if sft_step_count[0] == 2:  # third step: Ctrl-C twice inside it
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        sft_step_count[0] += 1
        return loss

    sft_step_count = [0]
    sft.training_step = step_pressed_twice
    try:
        with pytest.raises(checkpoints.TrainingStopped) as info:
            sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id)
    finally:
        sft.training_step = real_step
    assert "middle of a step" in str(info.value) and info.value.step == 2
    state = json.loads((tmp_path / "checkpoint-last" / "trainer_state.json").read_text())
    assert state["step"] == 2  # the periodic checkpoint, not the half-updated step 3


@pytest.mark.parametrize("change,words", [
    (dict(lr=5e-3), "lr=0.01 there, 0.005 now"), (dict(seed=1), "seed=0 there, 1 now"),
    (dict(steps=8), "steps=6 there, 8 now"), ("data", "other training data"), ("rank", "another model")])
def test_a_checkpoint_resumes_only_its_own_run(tiny_lora, tmp_path, change, words):
    model, tok, data = tiny_lora
    sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id, stop_after=2)
    other_model, other_data, other_cfg = copy.deepcopy(model), data, cfg(tmp_path)
    if change == "data":
        other_data = data[:-1]
    elif change == "rank":
        other_model = build_model("tiny", "lora", rank=2, alpha=8, device=torch.device("cpu"))[0]
    else:
        other_cfg = cfg(tmp_path, **change)
    with pytest.raises(checkpoints.OtherRunError, match="written by another run") as info:
        sft.train(other_model, other_data, other_cfg, pad_id=tok.pad_token_id)
    assert words in str(info.value) and "overwrite=True" in str(info.value)
    fresh = sft.train(other_model, other_data, other_cfg, pad_id=tok.pad_token_id, overwrite=True)
    assert fresh.resumed_from == 0 and fresh.step == other_cfg.steps


def test_checkpoints_are_replaced_atomically(tiny_lora, tmp_path):
    model, tok, data = tiny_lora
    sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id, stop_after=2)
    ckpt = tmp_path / "checkpoint-last"
    # a save stopped between its two renames: only the previous checkpoint is on disk, and it is found
    ckpt.rename(ckpt.with_name("checkpoint-last.previous"))
    assert checkpoints.find_checkpoint(ckpt) == ckpt.with_name("checkpoint-last.previous")
    # a save stopped while writing: its half folder holds a stray file that must not end up in the next checkpoint
    tmp = ckpt.with_name("checkpoint-last.tmp")
    tmp.mkdir()
    (tmp / "stray.bin").write_bytes(b"half")
    r = sft.train(copy.deepcopy(model), data, cfg(tmp_path), pad_id=tok.pad_token_id)
    assert r.resumed_from == 2 and r.step == 6
    assert not (ckpt / "stray.bin").exists() and not tmp.exists() and not ckpt.with_name("checkpoint-last.previous")\
        .exists()


# ---------------------------------------------------------------------------------------------------------------
# The command line, in a subprocess: SIGKILL and SIGINT, then the same command again
# ---------------------------------------------------------------------------------------------------------------

# Each step is made 0.4 s slower (a sleep inside it), so that the signal lands in the middle of a step.
SLOW = ("import sys, time\nfrom course_utils import sft\nstep = sft.training_step\n"
        "def slow(*a, **k):\n    time.sleep(0.4)\n    return step(*a, **k)\n"
        "sft.training_step = slow\nfrom course_utils.finetune import main\nmain()\n")


def _args(data: Path, out: Path) -> list[str]:
    return ["--model", "tiny", "--data", str(data), "--steps", "8", "--batch-size", "4", "--lr", "1e-2",
            "--max-len", "32", "--lora-dropout", "0.1", "--rank", "4", "--checkpoint-every", "2",
            "--output-dir", str(out)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}


def _run(args: list[str], slow: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-c", SLOW, *args] if slow else [sys.executable, "-m", "course_utils.finetune", *args]
    # cwd: not the repository, so that the course comes from the environment (as installed, or $PYTHONPATH)
    cwd = Path(args[args.index("--output-dir") + 1]).parent
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    state = out / "checkpoint-last" / "trainer_state.json"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if state.is_file() and json.loads(state.read_text())["step"] >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} after {timeout} s")


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """The data file and the uninterrupted run of the command."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}: add {i} and {i}.", "completion": f" {2 * i}"}) + "\n"
                            for i in range(16)))
    proc = _run(_args(data, root / "straight"))
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return data, root / "straight"


def _same_run(a: Path, b: Path) -> None:
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    assert ra["losses"] == rb["losses"]  # bit for bit (JSON keeps every digit of a float)
    wa, wb = (load_file(d / "adapter_model.safetensors") for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_command_resumes_to_the_uninterrupted_result(cli_runs, tmp_path, sig):
    data, straight = cli_runs
    out = tmp_path / "run"
    proc = _run(_args(data, out), slow=True)
    _wait_for_checkpoint(proc, out, step=2)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    stderr = proc.stderr.read()
    assert not (out / "result.json").exists()  # a stopped run is never written as finished
    if sig == signal.SIGINT:
        assert code == 130 and "Not finished: stopped at step" in stderr and "Resume with:" in stderr, stderr
        state = json.loads((out / "checkpoint-last" / "trainer_state.json").read_text())
        assert 2 <= state["step"] < 8 and len(state["losses"]) == state["step"]
    else:
        assert code == -signal.SIGKILL
    again = _run(_args(data, out))
    assert again.wait(timeout=300) == 0, again.communicate()
    _same_run(straight, out)


def test_the_command_refuses_another_run_into_a_folder(cli_runs, tmp_path):
    data, straight = cli_runs
    args = _args(data, straight)
    args[args.index("--lr") + 1] = "5e-3"
    done = subprocess.run([sys.executable, "-m", "course_utils.finetune", *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "already holds a finished run" in done.stderr and "--overwrite" in done.stderr


def test_the_command_called_from_python_stops_with_training_stopped(cli_runs, tmp_path, monkeypatch, capsys):
    """Chapter 11 calls the command's main() in its kernel: a stop stays a KeyboardInterrupt (not SystemExit)."""
    from course_utils import finetune

    data, _ = cli_runs
    real_step = sft.training_step

    def step_then_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # lands in the step: it finishes, then the run stops
        return real_step(*args, **kwargs)

    monkeypatch.setattr(sft, "training_step", step_then_ctrl_c)
    with pytest.raises(checkpoints.TrainingStopped) as info:
        finetune.main(_args(data, tmp_path / "run"))
    assert info.value.step == 1 and "Resume with:" in capsys.readouterr().err
    assert not (tmp_path / "run" / "result.json").exists()
