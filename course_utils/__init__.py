"""course_utils: the tested code behind the SFT course's notebooks, one module per idea.

Foundation: ``config`` (profiles), ``device`` (device, dtype, seeds), ``models`` (load_model), ``doctor``.
Chapters: ``masks`` (ch1) and the modules later chapters add.
"""

import os as _os

from .course.network import BLOCK_ENV as _BLOCK_ENV

__version__ = "0.1.0"

# Notebooks run by the test-suite inherit this variable, so their kernels are held offline too.
if _os.environ.get(_BLOCK_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
    from .course.network import block_network as _block

    _block()
