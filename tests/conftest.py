"""Shared fixtures: the backends to run on, and the reference data sets."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import backends


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
