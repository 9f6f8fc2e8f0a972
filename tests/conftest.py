"""Shared fixtures. The whole suite runs offline: hub access is off and any non-loopback socket fails."""

import os
import socket

import pytest
import pytest_socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("COURSE_PROFILE", "smoke")

from course_utils.course import network  # noqa: E402

# Two layers in this process. pytest-socket (pyproject.toml's addopts) lets each test connect to 127.0.0.1, ::1,
# localhost and Unix sockets only; the course's guard (already on where tools/offline/sitecustomize.py ran) also
# refuses sendto and name lookups. Child processes and kernels get the guard from that sitecustomize alone.
network.block_from_env(default="local")
# pytest-socket puts back the functions it found at import (before this file ran) after each test and in
# enable_socket(): make those the course's guards, or the first test's teardown would drop them.
pytest_socket._true_connect = socket.socket.connect
pytest_socket._true_getaddrinfo = socket.getaddrinfo
pytest_socket._true_gethostbyname = socket.gethostbyname


@pytest.fixture(scope="session")
def real_model():
    """The default offline model (SmolLM2-135M-Instruct) and its tokenizer, loaded once per session."""
    from course_utils.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def tiny():
    """A random-init tiny Llama: real code path, meaningless weights, milliseconds per forward."""
    from course_utils.models import tiny_llama

    return tiny_llama()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (cpu-profile claims, minutes each) run only with COURSE_RUN_SLOW=1, which ``make test``
    (and so CI) sets; a bare ``pytest`` skips them."""
    if os.environ.get("COURSE_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set COURSE_RUN_SLOW=1 (as `make test` does) to run the cpu-profile claims")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def base_model():
    """Chapter 9's base model (Gemma-3-270M offline, installed by `make`), loaded once; skipped where missing."""
    from course_utils.alignment import load_base_model
    from course_utils.models import ModelNotAvailableError

    try:
        return load_base_model(prefer=("gemma-3-270m",))
    except ModelNotAvailableError as err:
        pytest.skip(f"no offline base model: {err}")
