"""Shared fixtures: the backends to run on, and the reference data sets."""

import numpy as np
import pytest
from scipy import special
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from xlogreg import backends


def _backend_or_skip(name):
    try:
        return backends.get_backend(name)
    except (ImportError, backends.BackendUnavailableError) as err:
        pytest.skip(f"backend {name!r} unavailable: {err}")


@pytest.fixture(
    params=["numpy", "array_api_strict", pytest.param("cupy", marks=pytest.mark.gpu)]
)
def backend(request):
    """Every backend: NumPy, array-api-strict (the standard only) and CuPy (GPU)."""
    return _backend_or_skip(request.param)


@pytest.fixture
def cupy_backend():
    return _backend_or_skip("cupy")


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="session")
def breast_cancer():
    return _standardized(load_breast_cancer)


@pytest.fixture(scope="session")
def digits():
    return _standardized(load_digits)


@pytest.fixture(scope="session")
def breast_cancer_split():
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def sklearn_objective(X, y, coef, intercept, C, sample_weight=None, l1_ratio=0.0):
    """``C * sum_i s_i L_i + (1 - r) / 2 ||coef||^2 + r ||coef||_1`` in float64 with
    SciPy, the form sklearn minimizes (``y``: class indices)."""
    coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
    s = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
    Z = X @ coef.T + intercept
    if coef.shape[0] == 1:
        z = Z[:, 0]
        losses = -np.where(y == 1, special.log_expit(z), special.log_expit(-z))
    else:
        losses = special.logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return (C * np.sum(s * losses) + 0.5 * (1 - l1_ratio) * np.sum(coef**2)
            + l1_ratio * np.abs(coef).sum())


def _relative_gap(X, y, ours, theirs, C=1.0):
    J = sklearn_objective(X, y, ours.coef_, ours.intercept_, C)
    J_ref = sklearn_objective(X, y, theirs.coef_, theirs.intercept_, C)
    return abs(J - J_ref) / J_ref


@pytest.fixture
def relative_gap():
    """Relative gap of two fitted models' penalized objectives, computed with SciPy."""
    return _relative_gap
