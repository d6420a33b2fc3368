"""The interface every backend implements; standard library only."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # for the hints only: this module imports the standard library alone
    import numpy as np

__all__ = ["Backend", "BackendUnavailableError"]


#: An array of the backend's library (NumPy, CuPy, array-api-strict): they share no
#: base class to name.
Array: TypeAlias = Any
#: ``(loss, dW, db)``: the loss as a 0-d array and the gradients, on the device.
Gradient: TypeAlias = tuple[Array, Array, Array]


class BackendUnavailableError(RuntimeError):
    """The array library is installed but cannot run here (no device, no driver)."""


class Backend:
    """One array library: its namespace ``xp`` and the few things the namespace lacks.

    Hot code calls ``backend.xp.matmul`` and friends directly; this class only adds
    moving data to and from the host, synchronisation, randomness and a description.
    """

    name: str = ""
    # the array namespace (a module such as array_api_compat.numpy), set by each backend
    xp: ModuleType = None  # type: ignore[assignment]

    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """Copy host data (or a device array of this backend) to this backend."""
        raise NotImplementedError

    def to_numpy(self, x: Array) -> np.ndarray:
        """A NumPy array on the host holding the values of ``x``."""
        raise NotImplementedError

    def owns(self, x: object) -> bool:
        """Whether ``x`` is an array of this backend's library."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until queued device work is done; every timing needs this."""

    def default_rng(self, seed: int | None) -> Any:
        """A seeded random generator that lives with this backend."""
        raise NotImplementedError

    def permutation(self, rng: Any, n: int) -> Array:
        """A random permutation of ``range(n)`` as an integer array on the device."""
        raise NotImplementedError

    def fused_gradient(self, X: Array, Y: Array, W: Array, b: Array, scale: float,
                       alpha: float, sample_weight: Array | None = None) -> Gradient | None:
        """``(loss, dW, db)`` of ``xlogreg.models.loss_and_gradient`` from a fused
        kernel that reads ``X`` once, or ``None`` where this backend has none for
        these arrays (the caller then runs the plain ``xp`` code)."""
        return None

    def train_epoch(self, X: Array, Y: Array, W: Array, b: Array, *, rows: Array | None,
                    batch: int, etas: Sequence[float] | Array, mean_w: float, alpha: float,
                    fit_intercept: bool, sample_weight: Array | None = None,
                    l1: float = 0.0) -> tuple[Array, Array, Array] | None:
        """One mini-batch epoch in a compiled kernel, ``(W, b, loss_sum)``, or ``None``
        where this backend has none. Step ``s`` uses rows ``rows[s*batch:(s+1)*batch]``
        (all rows in order when ``rows`` is None) and the step size ``eta = etas[s]``:
        ``W <- soft(max(0, 1 - eta alpha) W - eta dW_data, eta l1)`` with ``soft(v, t)
        = sign(v) max(|v| - t, 0)`` (the proximal step of the L1 penalty; the identity
        when ``l1`` is 0) and ``b <- b - eta db`` (the intercept is never penalized)."""
        return None

    # Hooks a backend may define; they are absent here on purpose, and callers
    # test for them with ``getattr``/``hasattr`` and fall back where they are missing:
    #
    # ``hessian_sums(X, Y, W, b, sample_weight, fit_intercept, curvature=True) -> tuple
    # | None``: what ``xlogreg.optimizers.hessian_sums`` returns, from the backend's own
    # pass over ``X`` (without ``curvature``, the Hessian left out: None), or ``None``
    # where it has none for these arrays (the plain code runs).
    #
    # ``cholesky(A) -> Array | None``: the lower Cholesky factor ``L`` of a symmetric
    # ``A``, ``None`` where ``A`` is not positive definite; and ``cho_solve(L, g) ->
    # Array``: ``A^-1 g`` from that factor (``xlogreg.optimizers.cho_factor`` and
    # ``cho_solve`` fall back to the array API's ``linalg``).
    #
    # ``free_memory() -> int | None``: bytes of memory free for this backend's arrays,
    # ``None`` when unknown (the estimator then asks the host's ``os.sysconf``).

    def take_rows(self, X: Array, rows: Array) -> Array:
        """The rows ``rows`` of ``X``, a copy; sparse-aware in the backends that take
        sparse matrices (``xp.take`` refuses them)."""
        return self.xp.take(X, rows, axis=0)

    def device_info(self) -> dict[str, Any]:
        """A description of the device for reports (name, memory, versions)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<xlogreg backend {self.name!r}>"
