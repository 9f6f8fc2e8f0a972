"""Start-up network guard. Python imports ``sitecustomize`` at start-up from the first folder on sys.path that has
one; the Makefile's TEST_ENV puts this folder first on PYTHONPATH, so every Python process the tests start (CLI
subprocesses, notebook kernels, jupyter) is offline from its first line, whether or not it imports course_utils.

The guard is course_utils.course.network's, in the mode COURSE_BLOCK_NETWORK names: unset or 1, loopback and Unix
sockets only; all, loopback refused too; 0, off. Where course_utils is not importable, network.py (standard library
only) is loaded from this checkout. A sitecustomize further down sys.path (a distribution's, a venv's) still runs.
Keep this folder free of anything else: all of it shadows modules for every process with it on the path.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
_NETWORK_PY = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "course_utils", "course", "network.py")


def _network_module():
    """The course's guard module; this checkout's file where course_utils is not installed."""
    try:
        from course_utils.course import network
    except ImportError:
        spec = importlib.util.spec_from_file_location("_course_offline_network", _NETWORK_PY)
        network = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = network
        spec.loader.exec_module(network)
    return network


def _install() -> None:
    network = _network_module()
    try:
        mode = network.mode_from_env(default="local")
    except ValueError as err:  # a typo in the variable must not leave the process online
        sys.stderr.write(f"sitecustomize: {err}; blocking the network (loopback allowed) meanwhile\n")
        mode = "local"
    if mode is not None:
        network.block_network(mode)


def _chain() -> None:
    """Run the sitecustomize that this one shadows, if any: the next one on sys.path after this folder."""
    real = [os.path.realpath(p or os.curdir) for p in sys.path]
    if _HERE not in real:
        return
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path[real.index(_HERE) + 1:])
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_install()
_chain()
