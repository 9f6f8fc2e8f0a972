"""course_utils: the tested code behind the SFT course's notebooks, one module per concept.

Foundation: ``config`` (profiles and every size, ``config.sizes``), ``device`` (device, dtype, seeds), ``models``
(load_model). Chapters: ``masks`` (ch1), ``prompting`` (ch2) and the modules later chapters add. The course
machinery (chapter list, notebook build, exercises, quiz, grading, book) lives apart, in ``course_utils.course``.
"""

import os as _os

from .course.network import BLOCK_ENV as _BLOCK_ENV

__version__ = "0.1.0"

# Notebooks run by the test-suite inherit this variable, so their kernels are held offline too.
if _os.environ.get(_BLOCK_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
    from .course.network import block_network as _block

    _block()
