"""The ``xp`` layer: the only code that knows NumPy from CuPy.

>>> from xlogreg.backends import get_backend
>>> be = get_backend("cpu")
>>> be.name
'numpy'
>>> float(be.xp.sum(be.asarray([1.0, 2.0])))
3.0

Names: ``"numpy"`` (alias ``"cpu"``), ``"cupy"`` (aliases ``"cuda"``, ``"gpu"``),
``"array_api_strict"`` (a CPU library allowing only the array-API standard, used to
check that the code would run on CuPy) and ``"auto"``: the ``XLOGREG_BACKEND``
environment variable when set, else CuPy when it imports and sees a CUDA device,
else NumPy.

This package never imports ``xlogreg`` and imports CuPy only when it is asked for.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import array_api_compat

from ._base import Array, Backend, BackendUnavailableError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BACKEND_NAMES",
    "ENV_VAR",
    "available_backends",
    "canonical_name",
    "get_backend",
    "input_kind",
    "is_sparse",
    "resolve_backend",
    "to_numpy",
]

ENV_VAR = "XLOGREG_BACKEND"

#: what a backend's name resolves to
Canonical = Literal["numpy", "cupy", "array_api_strict"]

_ALIASES: dict[str, Canonical] = {
    "numpy": "numpy",
    "cpu": "numpy",
    "cupy": "cupy",
    "cuda": "cupy",
    "gpu": "cupy",
    "array_api_strict": "array_api_strict",
}
BACKEND_NAMES: tuple[str, ...] = tuple(sorted([*_ALIASES, "auto"]))


def canonical_name(name: str) -> Canonical:
    """``"cuda"`` -> ``"cupy"`` and so on; ``ValueError`` naming the valid ones."""
    if name == "auto":
        env = os.environ.get(ENV_VAR)
        if env and env != "auto":
            try:
                return canonical_name(env)
            except ValueError as err:
                raise ValueError(f"environment variable {ENV_VAR}: {err}") from None
        return "cupy" if _cupy_usable() else "numpy"
    try:
        return _ALIASES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown backend {name!r}; valid names are {', '.join(BACKEND_NAMES)}"
        ) from None


@functools.cache
def _make(canonical: Canonical) -> Backend:
    if canonical == "numpy":
        from ._numpy import NumpyBackend

        return NumpyBackend()
    if canonical == "cupy":
        from ._cupy import CupyBackend

        return CupyBackend()
    from ._strict import StrictBackend

    return StrictBackend()


def get_backend(name: str = "auto") -> Backend:
    """The backend object for ``name`` (created once, then cached).

    Raises ``ValueError`` for an unknown name, ``ImportError`` when the library is not
    installed (with the pip command), ``BackendUnavailableError`` when CuPy is
    installed but finds no usable CUDA device or driver.
    """
    return _make(canonical_name(name))


@functools.cache
def _cupy_usable() -> bool:
    try:
        _make("cupy")
    except (ImportError, BackendUnavailableError):
        return False
    return True


def available_backends() -> list[Canonical]:
    """Canonical names of the backends that work on this machine."""
    names: list[Canonical] = []
    for name in ("numpy", "cupy", "array_api_strict"):
        try:
            _make(name)
        except (ImportError, BackendUnavailableError):
            continue
        names.append(name)
    return names


def _sparse_kind(x: object) -> Canonical | None:
    """``"numpy"`` for a SciPy sparse matrix or array, ``"cupy"`` for a CuPy one, else
    ``None``. A module not imported yet cannot have made ``x``, so it is looked up in
    ``sys.modules`` and never imported here (SciPy's import costs 0.2 s, CuPy's more)."""
    scipy_sparse = sys.modules.get("scipy.sparse")
    if scipy_sparse is not None and scipy_sparse.issparse(x):
        return "numpy"
    cupyx_sparse = sys.modules.get("cupyx.scipy.sparse")
    if cupyx_sparse is not None and cupyx_sparse.issparse(x):
        return "cupy"
    return None


def is_sparse(x: object) -> bool:
    """Whether ``x`` is a sparse matrix or array of SciPy or of CuPy
    (``cupyx.scipy.sparse``); neither library is imported to find out."""
    return _sparse_kind(x) is not None


def input_kind(x: object) -> Canonical:
    """Which backend an input array belongs to, found with array-api-compat.

    NumPy arrays, SciPy sparse matrices, lists, pandas objects and anything else on
    the host count as ``"numpy"``; CuPy arrays and ``cupyx.scipy.sparse`` matrices as
    ``"cupy"``. Libraries not loaded yet are never imported to find out.
    """
    sparse = _sparse_kind(x)
    if sparse is not None:
        return sparse
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_numpy_array(x) or not array_api_compat.is_array_api_obj(x):
        return "numpy"
    try:
        if array_api_compat.is_array_api_strict_namespace(array_api_compat.array_namespace(x)):
            return "array_api_strict"
    except (TypeError, AttributeError):
        pass
    raise TypeError(
        f"unsupported array type {type(x).__module__}.{type(x).__qualname__}; "
        "pass a NumPy or CuPy array (convert other libraries' arrays first)"
    )


def resolve_backend(name: str, *arrays: object,
                    names: Sequence[str] = ("X", "y", "sample_weight")) -> Backend:
    """The backend to run on, given the requested ``name`` and the input arrays.

    Device arrays decide for ``"auto"``; host data goes to the requested backend.
    Mixing device libraries, or device data with a backend of another library, is an
    error that says what to do.
    """
    kinds: dict[str, Canonical] = {}
    for label, a in zip(names, arrays):
        if a is not None:
            kinds[label] = input_kind(a)
    found = set(kinds.values())
    if len(found) > 1:
        listing = ", ".join(f"{k} is {v}" for k, v in kinds.items())
        raise TypeError(
            f"inputs mix array libraries ({listing}); put them all on one device, "
            "e.g. cupy.asarray(y) or y.get()"
        )
    device_kind = next((k for k in found if k != "numpy"), None)
    if name == "auto" and device_kind is not None:
        return _make(device_kind)
    backend = get_backend(name)
    if device_kind is not None and backend.name != device_kind:
        first = next(k for k, v in kinds.items() if v == device_kind)
        hint = (
            "pass backend='cuda' (or 'auto'), or copy the data to the host with .get()"
            if device_kind == "cupy"
            else f"pass backend={device_kind!r} (or 'auto'), or pass NumPy arrays"
        )
        raise ValueError(
            f"{first} is a {device_kind} array but backend={name!r} runs on "
            f"{backend.name}; {hint}"
        )
    return backend


def to_numpy(x: Array) -> np.ndarray:
    """Any supported array (NumPy, CuPy, array-api-strict) as a host NumPy array."""
    kind = input_kind(x)
    return _make(kind).to_numpy(x)
