"""array-api-strict as a backend: a CPU array library that allows only the standard.

Running the training code on it catches NumPy-only habits (methods, fancy indexing,
implicit casts) that would break on CuPy, without a GPU.
"""

from __future__ import annotations

import numpy as np

from . import is_sparse
from ._base import Backend

__all__ = ["StrictBackend"]


class StrictBackend(Backend):
    name = "array_api_strict"

    def __init__(self):
        try:
            import array_api_strict
        except ModuleNotFoundError as err:
            raise ImportError(
                'backend "array_api_strict" needs array-api-strict: '
                'pip install "xlogreg[test]"'
            ) from err
        self.xp = array_api_strict
        self._array_type = type(array_api_strict.asarray(0.0))

    def asarray(self, x, dtype=None):
        if is_sparse(x):  # np.asarray would box it in a 0-d object array
            raise TypeError(
                "backend 'array_api_strict' takes dense arrays only: array_api_strict "
                "has no sparse arrays (pass X.toarray(), or use backend='numpy')"
            )
        if not self.owns(x):
            x = np.asarray(x)
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        if self.owns(x):
            return np.from_dlpack(x).copy()
        return np.asarray(x)

    def owns(self, x) -> bool:
        return isinstance(x, self._array_type)

    def default_rng(self, seed):
        return np.random.default_rng(seed)

    def permutation(self, rng, n):
        return self.xp.asarray(rng.permutation(n))

    def device_info(self) -> dict:
        from ._numpy import cpu_info

        return {"backend": self.name, "device": "cpu", **cpu_info()}
