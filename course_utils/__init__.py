"""course_utils: the tested code behind the SFT course's notebooks, one module per concept.

Foundation: ``config`` (profiles and every size, ``config.sizes``), ``device`` (device, dtype, seeds), ``models``
(load_model). Chapters: ``masks`` (ch1), ``prompting`` (ch2) and the modules later chapters add. The course
machinery (chapter list, notebook build, exercises, quiz, grading, book) lives apart, in ``course_utils.course``.
"""

import warnings as _warnings

from .course import network as _network

__version__ = "0.1.0"

# Notebooks run by the test-suite inherit COURSE_BLOCK_NETWORK, so their kernels are held offline too (1: loopback
# only, all: nothing). A value it does not know blocks too (with a warning), never a silent "off".
try:
    _network.block_from_env()
except ValueError as _err:
    _warnings.warn(f"{_err}; blocking the network (loopback allowed) meanwhile.", stacklevel=2)
    _network.block_network("local")
