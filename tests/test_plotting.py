"""lossjit.plotting: curves against their formulas, every loss drawn or refused, the files."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import lossjit
from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.layouts import RankPairs, Stacked
from lossjit.plotting import curves, plot

mpl_image = pytest.importorskip("matplotlib.image")

#: Losses whose inputs are not one number per term (pairs, triplets, rank pairs): refused.
REFUSED = {name for name in registry.names()
           if isinstance(registry.resolve(name).layout, (Stacked, RankPairs))}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- curves against formulas ------------------------------------------------------------------


def test_mse_curves():
    c = curves("mse", lo=-2.0, hi=3.0, target=0.5, points=11)
    e = c.x - 0.5
    np.testing.assert_allclose(c.x, np.linspace(-2.0, 3.0, 11))
    np.testing.assert_allclose(c.loss, e**2)
    np.testing.assert_allclose(c.grad, 2 * e)
    np.testing.assert_allclose(c.hess, 2.0)
    assert c.target == 0.5 and c.xlabel == "prediction" and c.name == "mse"


def test_defaults_of_regression():
    c = curves("mse")
    assert c.x.size == 401 and c.x[0] == -3.0 and c.x[-1] == 3.0 and c.target == 0.0
    assert curves("mae", points=5).name == "l1"  # aliases resolve


def test_huber_curves():
    delta = 1.5
    c = curves("huber", lo=-4, hi=4, points=81, options={"delta": delta})
    e = c.x
    small = np.abs(e) < delta
    np.testing.assert_allclose(c.loss, np.where(small, 0.5 * e**2,
                                                 delta * (np.abs(e) - 0.5 * delta)))
    np.testing.assert_allclose(c.grad, np.where(small, e, delta * np.sign(e)))
    np.testing.assert_allclose(c.hess, np.where(small, 1.0, 0.0))
    assert c.options == {"delta": delta}


def test_cross_entropy_over_the_true_class_probability():
    c = curves("cross_entropy", points=99)
    p = c.x
    assert 0 < p[0] < p[-1] < 1 and p.size == 99
    assert c.xlabel == "probability of the true class" and c.wrt == "logit of the true class"
    np.testing.assert_allclose(c.loss, -np.log(p), rtol=1e-10)
    np.testing.assert_allclose(c.grad, p - 1, atol=1e-12)
    np.testing.assert_allclose(c.hess, p * (1 - p), atol=1e-12)
    assert c.target == 0


def test_nll_and_focal_over_p():
    p = curves("nll", lo=0.1, hi=0.9, points=9).x
    np.testing.assert_allclose(p, np.linspace(0.1, 0.9, 9))
    c = curves("nll", lo=0.1, hi=0.9, points=9)
    np.testing.assert_allclose(c.loss, -np.log(p), rtol=1e-10)
    np.testing.assert_allclose(c.grad, -1.0)
    gamma = 2.0
    f = curves("focal", lo=0.1, hi=0.9, points=9, options={"gamma": gamma})
    np.testing.assert_allclose(f.loss, -((1 - p) ** gamma) * np.log(p), rtol=1e-10)
    assert f.hess is None


def test_bce_with_logits_curves():
    c = curves("bce_with_logits", points=41)
    x = c.x
    assert x[0] == -4 and x[-1] == 4 and c.target == 1.0 and c.xlabel == "logit"
    np.testing.assert_allclose(c.loss, np.log1p(np.exp(-x)), rtol=1e-10)
    np.testing.assert_allclose(c.grad, sigmoid(x) - 1, atol=1e-12)
    np.testing.assert_allclose(c.hess, sigmoid(x) * sigmoid(-x), atol=1e-12)
    zero = curves("bce_with_logits", target=0.0, points=41)
    np.testing.assert_allclose(zero.loss, np.log1p(np.exp(x)), rtol=1e-10)


def test_binary_cross_entropy_over_open_unit_interval():
    c = curves("binary_cross_entropy", points=50)
    assert 0 < c.x[0] and c.x[-1] < 1 and c.x.size == 50 and c.target == 1.0
    np.testing.assert_allclose(c.loss, -np.log(c.x), rtol=1e-10)


def test_gaussian_nll_uses_unit_variance_unless_told():
    c = curves("gaussian_nll", lo=-1, hi=1, points=5)
    np.testing.assert_allclose(c.loss, 0.5 * c.x**2)
    c = curves("gaussian_nll", lo=-1, hi=1, points=5, options={"var": 2.0})
    np.testing.assert_allclose(c.loss, 0.5 * (np.log(2.0) + c.x**2 / 2.0))
    np.testing.assert_allclose(c.grad, c.x / 2.0)


# --- every registered loss --------------------------------------------------------------------


def test_the_refused_losses():
    assert REFUSED == {"contrastive", "triplet", "cosine_embedding", "margin_ranking"}


@pytest.mark.parametrize("name", registry.names())
def test_every_loss_draws_or_refuses(name):
    if name in REFUSED:
        with pytest.raises(LossjitError, match=name):
            curves(name, points=21)
        return
    c = curves(name, points=21)
    assert c.x.shape == c.loss.shape == c.grad.shape == (21,)
    assert np.isfinite(c.x).all() and np.isfinite(c.loss).all() and np.isfinite(c.grad).all()
    assert np.all(np.diff(c.x) > 0)
    if c.hess is not None:
        assert c.hess.shape == (21,) and np.isfinite(c.hess).all()
    assert (c.hess is not None) <= bool(registry.resolve(name).hessian)


def test_grid_errors():
    with pytest.raises(LossjitError, match="lo < hi"):
        curves("mse", lo=1, hi=-1)
    with pytest.raises(LossjitError, match="points"):
        curves("mse", points=0)
    with pytest.raises(LossjitError, match=r"in \(0, 1\)"):
        curves("cross_entropy", lo=0.0)
    with pytest.raises(LossjitError, match="target"):
        curves("cross_entropy", target=2)
    with pytest.raises(LossjitError, match="unknown option"):
        curves("mse", options={"delta": 1.0})
    with pytest.raises(LossjitError, match="tweedie"):  # names the loss
        curves("tweedie", target=-1.0)
    with pytest.raises(lossjit.UnknownLossError):
        curves("no_such_loss")


# --- the figure -------------------------------------------------------------------------------


def read_png(path):
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return mpl_image.imread(path)


def distinct_colours(image):
    return np.unique(image.reshape(-1, image.shape[-1]), axis=0).shape[0]


def test_plot_writes_a_png_with_a_hessian_panel(tmp_path):
    path = tmp_path / "regression.png"
    plot(["mse", "l1", "huber"], str(path), points=51, title="regression")
    image = read_png(path)
    assert image.shape[0] > 200 and image.shape[1] > 600
    assert distinct_colours(image) > 1
    two = tmp_path / "two.png"
    plot(["focal", "nll"], str(two), points=51)  # neither has a Hessian: two panels
    assert read_png(two).shape[1] < image.shape[1]
    assert sorted(os.listdir(tmp_path)) == ["regression.png", "two.png"]


def test_plot_shares_options_and_writes_svg_and_pdf(tmp_path):
    svg = tmp_path / "f.svg"
    plot(["huber", "pseudo_huber", "mse"], str(svg), options={"delta": 2.0}, points=31)
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "huber (delta=2)" in text
    pdf = tmp_path / "f.pdf"
    plot("cross_entropy", str(pdf), points=31)
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(LossjitError, match="none of the losses"):
        plot(["mse"], str(tmp_path / "g.png"), options={"delta": 1.0})


def test_plot_replaces_a_file_atomically(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    plot(["mse"], str(path), points=11)
    assert read_png(path).size
    assert sorted(os.listdir(tmp_path)) == ["f.png"]  # no temporary file left behind


def test_plot_errors(tmp_path):
    with pytest.raises(LossjitError, match="extension"):
        plot(["mse"], str(tmp_path / "f.jpgx"))
    with pytest.raises(LossjitError, match="extension"):
        plot(["mse"], str(tmp_path / "noextension"))
    with pytest.raises(LossjitError, match="does not exist"):
        plot(["mse"], str(tmp_path / "missing" / "f.png"))
    with pytest.raises(LossjitError, match="triplet"):
        plot(["mse", "triplet"], str(tmp_path / "f.png"))
    with pytest.raises(LossjitError, match="at least one"):
        plot([], str(tmp_path / "f.png"))
    assert os.listdir(tmp_path) == []


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    with pytest.raises(LossjitError, match=r"lossjit\[plot\]"):
        plot(["mse"], str(tmp_path / "f.png"))
    assert curves("mse", points=3).loss.size == 3  # curves need no matplotlib
