"""Vectorized logistic regression trained by gradient descent on NumPy or CuPy.

The package loads lazily: ``import xlogreg.backends`` (the array layer) does not
import the estimator, scikit-learn or Numba.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

__all__ = ["LogisticRegression", "__version__", "fit_out_of_core"]
__version__ = "0.1.0"


def _mount_source_backends():
    """Make ``xlogreg.backends`` importable from a source checkout.

    Installed, the repository's top-level ``backends/`` folder is the subpackage
    ``xlogreg/backends`` (a setuptools package-dir mapping), so that ``xlogreg`` is
    the only top-level name we ship. Run from a checkout (``PYTHONPATH=.``), the
    folder sits beside this package and is mounted under the same name here.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, "backends")) or "xlogreg.backends" in sys.modules:
        return
    folder = os.path.join(os.path.dirname(here), "backends")
    spec = importlib.util.spec_from_file_location(
        "xlogreg.backends", os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])
    if spec is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["xlogreg.backends"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["xlogreg.backends"]
        raise


_mount_source_backends()

_LAZY = {"LogisticRegression": ".estimator", "fit_out_of_core": ".streaming"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xlogreg' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
