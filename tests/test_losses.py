"""The stable link and loss functions against SciPy's float64 implementations."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special

from xlogreg import losses

Z_EXTREME = np.array([-5000.0, -800.0, -40.0, -1.0, 0.0, 1e-9, 2.5, 40.0, 800.0, 5000.0])


def _on(backend, a):
    return backend.asarray(a)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_and_log_sigmoid_at_extremes(backend, dtype):
    z = Z_EXTREME.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = backend.to_numpy(losses.sigmoid(_on(backend, z), backend.xp))
        ls = backend.to_numpy(losses.log_sigmoid(_on(backend, z), backend.xp))
    assert s.dtype == dtype and ls.dtype == dtype
    assert np.all(np.isfinite(ls))
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_allclose(s, special.expit(Z_EXTREME), rtol=rtol, atol=0)
    assert_allclose(ls, special.log_expit(Z_EXTREME), rtol=rtol, atol=0)


def test_binary_loss_matches_textbook_formula_where_that_is_safe(backend):
    z = np.linspace(-15, 15, 61)  # beyond ~20, 1 - a itself has no digits left
    y = (np.arange(61) % 2).astype(np.float64)
    a = special.expit(z)
    textbook = -y * np.log(a) - (1 - y) * np.log(1 - a)
    got = backend.to_numpy(losses.binary_loss(_on(backend, z), _on(backend, y), backend.xp))
    # the textbook form loses digits in log(1 - a) near 0; compare absolutely there
    assert_allclose(got, textbook, rtol=1e-9, atol=1e-12)


def test_binary_loss_and_dz_at_extremes(backend):
    y = np.array([1.0, 0.0] * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = losses.binary_loss_and_dz(_on(backend, Z_EXTREME), _on(backend, y), backend.xp)
    loss, dz = backend.to_numpy(loss), backend.to_numpy(dz)
    # -y log(sigmoid(z)) - (1-y) log(sigmoid(-z)), from SciPy
    expected = -y * special.log_expit(Z_EXTREME) - (1 - y) * special.log_expit(-Z_EXTREME)
    assert np.all(np.isfinite(loss))
    assert_allclose(loss, expected, rtol=1e-12, atol=1e-300)
    assert_allclose(dz, special.expit(Z_EXTREME) - y, rtol=1e-12, atol=1e-300)
    # a wrong label at |z| = 5000 costs exactly 5000; a right one at z = 800 costs ~0
    assert loss[0] == 5000.0 and loss[-1] == 5000.0 and loss[8] < 1e-300


def test_multinomial_loss_softmax_and_logsumexp(backend, rng):
    Z = rng.normal(size=(6, 4)) * 3
    Z[0] = [1000.0, -1000.0, 0.0, 999.0]
    Z[1] = [-4000.0, -4000.0, -4001.0, -4002.0]
    y = np.array([0, 1, 2, 3, 1, 2])
    Y = np.eye(4)[y]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dev_Z, dev_Y = _on(backend, Z), _on(backend, Y)
        loss, dz = losses.multinomial_loss_and_dz(dev_Z, dev_Y, backend.xp)
        plain = losses.multinomial_loss(dev_Z, dev_Y, backend.xp)
        sm = losses.softmax(dev_Z, axis=1, xp=backend.xp)
        lse = losses.logsumexp(dev_Z, axis=1, xp=backend.xp)
    expected_lse = special.logsumexp(Z, axis=1)
    expected_loss = expected_lse - Z[np.arange(6), y]
    assert_allclose(backend.to_numpy(lse), expected_lse, rtol=1e-13)
    assert_allclose(backend.to_numpy(loss), expected_loss, rtol=1e-12)
    assert_allclose(backend.to_numpy(plain), expected_loss, rtol=1e-12)
    assert_allclose(backend.to_numpy(sm), special.softmax(Z, axis=1), rtol=1e-12, atol=1e-300)
    assert_allclose(backend.to_numpy(dz), special.softmax(Z, axis=1) - Y, rtol=1e-12, atol=1e-15)


def test_namespace_is_found_from_the_input():
    z = np.array([0.0, 800.0])
    assert_allclose(losses.softplus(z), [np.log(2.0), 800.0])
