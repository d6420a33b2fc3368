"""The CuPy backend: arrays in GPU memory. CuPy is imported only when asked for."""

from __future__ import annotations

import numpy as np

from ._base import Backend, BackendUnavailableError

__all__ = ["CupyBackend", "import_cupy"]

INSTALL_HINT = 'pip install "xlogreg[cuda]"'


def import_cupy():
    """Import CuPy and check that it sees a CUDA device; two causes, two errors."""
    try:
        import cupy
    except ModuleNotFoundError as err:
        if err.name not in ("cupy", None):
            raise BackendUnavailableError(
                f"CuPy is installed but failed to import ({err}); reinstall it with "
                f"{INSTALL_HINT}"
            ) from err
        raise ImportError(
            f'backend "cupy" needs CuPy, which is not installed: {INSTALL_HINT} '
            "(CUDA 12; see https://docs.cupy.dev/en/stable/install.html for others)"
        ) from err
    except ImportError as err:  # CuPy's own guard: the CUDA libraries failed to load
        raise BackendUnavailableError(
            f"CuPy is installed but cannot load CUDA: {err}"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, or a driver too old
        raise BackendUnavailableError(
            f"CuPy is installed but no usable CUDA device or driver was found: {err}"
        ) from err
    if count < 1:
        raise BackendUnavailableError(
            "CuPy is installed but no CUDA device is visible "
            "(check CUDA_VISIBLE_DEVICES and nvidia-smi)"
        )
    return cupy


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        self._cupy = import_cupy()
        import array_api_compat.cupy as xp

        self.xp = xp

    def asarray(self, x, dtype=None):
        return self._cupy.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return self._cupy.asnumpy(x)

    def owns(self, x) -> bool:
        return isinstance(x, self._cupy.ndarray)

    def synchronize(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()

    def default_rng(self, seed):
        return self._cupy.random.RandomState(seed)

    def permutation(self, rng, n):
        return rng.permutation(n)

    def device_info(self) -> dict:
        cupy = self._cupy
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        return {
            "backend": self.name,
            "device": f"cuda:{dev.id}",
            "gpu": name.decode() if isinstance(name, bytes) else str(name),
            "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
            "numpy": np.__version__,
        }
