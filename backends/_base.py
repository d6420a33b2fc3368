"""The interface every backend implements; standard library only."""

from __future__ import annotations

__all__ = ["Backend", "BackendUnavailableError"]


class BackendUnavailableError(RuntimeError):
    """The array library is installed but cannot run here (no device, no driver)."""


class Backend:
    """One array library: its namespace ``xp`` and the few things the namespace lacks.

    Hot code calls ``backend.xp.matmul`` and friends directly; this class only adds
    moving data to and from the host, synchronisation, randomness and a description.
    """

    name: str = ""
    xp = None

    def asarray(self, x, dtype=None):
        """Copy host data (or a device array of this backend) to this backend."""
        raise NotImplementedError

    def to_numpy(self, x):
        """A NumPy array on the host holding the values of ``x``."""
        raise NotImplementedError

    def owns(self, x) -> bool:
        """Whether ``x`` is an array of this backend's library."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until queued device work is done; every timing needs this."""

    def default_rng(self, seed: int):
        """A seeded random generator that lives with this backend."""
        raise NotImplementedError

    def permutation(self, rng, n: int):
        """A random permutation of ``range(n)`` as an integer array on the device."""
        raise NotImplementedError

    def fused_gradient(self, X, Y, W, b, scale, alpha, sample_weight=None):
        """``(loss, dW, db)`` of ``xlogreg.models.loss_and_gradient`` from a fused
        kernel that reads ``X`` once, or ``None`` where this backend has none for
        these arrays (the caller then runs the plain ``xp`` code)."""
        return None

    def train_epoch(self, X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept,
                    sample_weight=None):
        """One mini-batch epoch in a compiled kernel, ``(W, b, loss_sum)``, or ``None``
        where this backend has none. Step ``s`` uses rows ``rows[s*batch:(s+1)*batch]``
        (all rows in order when ``rows`` is None) and the step size ``etas[s]``."""
        return None

    def device_info(self) -> dict:
        """A description of the device for reports (name, memory, versions)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<xlogreg backend {self.name!r}>"
