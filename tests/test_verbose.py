"""verbose=1: a bar that knows it may stop early, and a closing line; verbose=2: a
text line per epoch, as scikit-learn's SGD prints them."""

import re

import numpy as np
import pytest

from xlogreg import LogisticRegression


@pytest.mark.parametrize("params", [{}, {"batch_size": 64, "random_state": 0},
                                    {"solver": "lbfgs"}], ids=["full", "minibatch", "lbfgs"])
def test_verbose_2_prints_a_line_per_epoch(breast_cancer, capsys, params):
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", verbose=2, **params).fit(X, y)
    err = capsys.readouterr().err
    lines = re.findall(r"^-- Epoch (\d+): loss ([0-9.e+-]+), step ([0-9.e+-]+), "
                       r"[0-9.]+ s$", err, flags=re.M)
    assert [int(n) for n, _, _ in lines] == list(range(1, clf.n_iter_ + 1))
    np.testing.assert_allclose([float(v) for _, v, _ in lines], clf.loss_curve_, rtol=1e-7)
    assert re.search(rf"^converged after {clf.n_iter_} (epochs|iterations) \(", err, re.M)


def test_verbose_1_bar_has_no_total_and_stays(breast_cancer, capsys, monkeypatch):
    import tqdm.auto

    made = []
    real = tqdm.auto.tqdm

    def spy(*args, **kwargs):
        bar = real(*args, **kwargs)
        made.append(bar)
        return bar

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", verbose=1).fit(X, y)
    (bar,) = made
    assert bar.total is None  # no "time left" for a fit that may stop early
    assert bar.n == clf.n_iter_ < clf.max_epochs
    assert "at most 1000" in bar.desc
    assert f"converged after {clf.n_iter_} epochs" in capsys.readouterr().err


def test_silent_by_default(breast_cancer, capsys):
    LogisticRegression(backend="numpy").fit(*breast_cancer)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""
