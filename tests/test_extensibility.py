"""Raw kernels inside a user's @njit code, user-registered losses, and the jit layer."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from numba import njit

import lossjit
from lossjit import _jit, kernels, registry
from lossjit.cli import cli


def test_raw_kernel_compiles_inside_user_njit_function():
    @njit
    def user_step(x, y, lr):
        grad = np.empty_like(x)
        none = np.empty(0)
        total = kernels.huber(x, y, none, grad, none, none, none, 1.0 / x.size, 1.0)
        return total / x.size, x - lr * grad

    x = np.array([0.5, 3.0, -2.0])
    y = np.zeros(3)
    value, stepped = user_step(x, y, 0.1)
    e = x - y
    expected = np.where(np.abs(e) < 1, 0.5 * e**2, np.abs(e) - 0.5).mean()
    expected_grad = np.clip(e, -1, 1) / 3
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(stepped, x - 0.1 * expected_grad, rtol=1e-12)


def test_raw_parallel_kernel_agrees_with_serial_inside_user_code():
    @njit
    def both(x, y):
        g1, g2 = np.empty_like(x), np.empty_like(x)
        none = np.empty(0)
        return (kernels.mse(x, y, none, g1, none, none, none, 1.0),
                kernels.mse_parallel(x, y, none, g2, none, none, none, 1.0), g1, g2)

    x = np.linspace(-3, 3, 100_003)
    a, b, g1, g2 = both(x, np.zeros_like(x))
    assert a == b and np.array_equal(g1, g2)
    assert a == pytest.approx(float(np.sum(x * x)), rel=1e-12)


def test_raw_hessian_kernel_writes_hess_grad_losses_and_sums_in_one_pass_inside_user_code():
    """A kernel set with ``hessian`` writes the Hessian's diagonal into ``hess`` and the
    per-term losses into ``losses`` in the same call: the two outputs are separate."""
    @njit
    def newton(x, y):
        grad, hess, losses = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        sums, none = np.empty(1), np.empty(0)
        total = kernels.mse(x, y, none, grad, hess, losses, sums, 0.5)
        return total, grad, hess, losses, sums

    x = np.array([0.5, 3.0, -2.0, 1.0])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    total, grad, hess, losses, sums = newton(x, y)
    e = x - y
    assert total == float(np.sum(e * e)) and sums[0] == total
    np.testing.assert_array_equal(losses, e * e)
    np.testing.assert_array_equal(grad, 0.5 * 2 * e)
    np.testing.assert_array_equal(hess, np.full(4, 0.5 * 2))


def test_raw_kernel_without_a_hessian_leaves_hess_alone_inside_user_code():
    from lossjit.kernels.embedding import KERNELS

    assert not KERNELS["margin_ranking"].hessian

    @njit
    def rank(x, y):
        grad, hess, losses = np.empty_like(x), np.full_like(x, -7.0), np.empty(x.shape[0])
        none = np.empty(0)
        total = kernels.margin_ranking(x, y, none, grad, hess, losses, none, 1.0, 0.5)
        return total, grad, hess, losses

    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    total, grad, hess, losses = rank(x, np.array([1.0, 1.0]))
    np.testing.assert_array_equal(losses, [0.0, 1.5])
    assert total == 1.5
    np.testing.assert_array_equal(grad, [[0.0, 0.0], [-1.0, 1.0]])
    assert (hess == -7.0).all()


@njit
def _log_cosh_pointwise(x, y, scale):
    e = x - y
    a = abs(e)
    return scale * (a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)), scale * np.tanh(e)


@pytest.fixture
def registered():
    spec = lossjit.register("my_log_cosh", pointwise=_log_cosh_pointwise,
                            params=[("scale", 1.0, "multiplies the loss")], aliases=("mlc",),
                            formula="scale log(cosh(x - y))", replace=True)
    yield spec
    registry._specs.pop("my_log_cosh", None)
    registry._aliases.pop("my_log_cosh", None)
    registry._aliases.pop("mlc", None)


def test_registered_loss_works_in_the_api(registered):
    x = np.array([0.3, -1.2, 4.0])
    y = np.array([0.0, 0.5, 1.0])
    value, grad = lossjit.value_and_grad("mlc", x, y, scale=2.0)
    assert value == pytest.approx(2.0 * np.mean(np.log(np.cosh(x - y))), rel=1e-12)
    np.testing.assert_allclose(grad, 2.0 * np.tanh(x - y) / 3, rtol=1e-12)
    assert "my_log_cosh" in lossjit.names()
    with pytest.raises(lossjit.LossjitError, match="unknown option"):
        lossjit.loss("my_log_cosh", x, y, sclae=1.0)


def test_registered_loss_appears_in_list_info_and_compute(registered, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("p.npy", np.array([1.0, 2.0]))
    np.save("t.npy", np.array([0.0, 0.0]))
    runner = CliRunner()
    assert "my_log_cosh" in runner.invoke(cli, ["list"]).output
    assert "--scale" in runner.invoke(cli, ["info", "mlc"]).output
    result = runner.invoke(cli, ["compute", "mlc", "p.npy", "t.npy", "--scale", "3",
                                 "--no-grad"])
    assert result.exit_code == 0, result.output
    assert float(result.output) == pytest.approx(3 * np.mean(np.log(np.cosh([1.0, 2.0]))))


def test_registered_loss_takes_sample_weight_and_empty_but_has_no_hessian(registered):
    x = np.array([0.3, -1.2, 4.0])
    y = np.array([0.0, 0.5, 1.0])
    w = np.array([1.0, 0.0, 3.0])
    value, grad = lossjit.value_and_grad("mlc", x, y, sample_weight=w)
    terms = np.log(np.cosh(x - y))
    assert value == pytest.approx(np.sum(w * terms) / w.sum(), rel=1e-12)
    np.testing.assert_allclose(grad, w * np.tanh(x - y) / w.sum(), rtol=1e-12)
    assert lossjit.loss("mlc", x[:0], y[:0], empty="zero") == 0.0
    with pytest.raises(lossjit.LossjitError, match="no Hessian"):
        lossjit.grad_hess("mlc", x, y)


def test_register_refuses_an_option_named_like_a_common_one():
    for name in ("sample_weight", "empty", "reduction", "wrt", "out"):
        with pytest.raises(lossjit.LossjitError, match="reserved"):
            lossjit.register("reserved_option", pointwise=_log_cosh_pointwise,
                             params=[(name, 1.0)])
    assert "reserved_option" not in lossjit.names()


def test_register_refuses_taken_and_invalid_names():
    with pytest.raises(lossjit.LossjitError, match="taken"):
        lossjit.register("ce", pointwise=_log_cosh_pointwise)
    with pytest.raises(lossjit.LossjitError, match="not a valid loss name"):
        lossjit.register("Bad Name", pointwise=_log_cosh_pointwise)
    with pytest.raises(lossjit.LossjitError, match="exactly one"):
        lossjit.register("nothing_given")


def test_specialisations_of_one_template_keep_separate_cache_names():
    names = {kernels.mse.py_func.__qualname__, kernels.huber.py_func.__qualname__,
             kernels.mse_parallel.py_func.__qualname__}
    assert len(names) == 3


def test_specialise_refuses_a_binding_that_is_not_a_free_name_of_the_template():
    from lossjit.kernels import _blocks
    from lossjit.kernels.regression import mse_pointwise

    # a misspelt name
    with pytest.raises(TypeError, match="elementwise_template has no free name 'pointwse'"):
        _jit.specialise(_blocks.elementwise_template, "typo_block", pointwse=mse_pointwise)
    # a real name of the templates' module that this template does not use
    assert "block" not in _blocks.elementwise_template.__code__.co_names
    with pytest.raises(TypeError, match="no free name 'block'.*its free names: .*pointwise"):
        _jit.specialise(_blocks.elementwise_template, "typo_block", block=mse_pointwise)
    # one bad name among good ones is enough
    with pytest.raises(TypeError, match="no free name 'blok'"):
        _jit.specialise(_blocks.rows_template, "typo", parallel=True, block=mse_pointwise,
                        blok=mse_pointwise)
    # the free names themselves are accepted (nothing is compiled until a call)
    block = _jit.specialise(_blocks.elementwise_template, "fine_block", pointwise=mse_pointwise,
                            hessian=True)
    assert callable(_jit.specialise(_blocks.rows_template, "fine", block=block))


def test_kernels_all_is_the_union_of_every_kernel_tables_public_names():
    """``lossjit.kernels.__all__`` is made of the ``KERNELS`` table of every kernel module
    (found on disk, not from the package's own list), each name once, each the kernel it
    names; and the tables hold exactly the kernel sets of the built-in losses."""
    import importlib
    import pkgutil

    public: dict[str, object] = {}
    tables = 0
    for module_info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"lossjit.kernels.{module_info.name}")
        table = getattr(module, "KERNELS", None)
        if table is None:
            continue
        tables += 1
        assert module_info.name in kernels.FAMILIES
        for name, kernel_set in table.items():
            assert kernel_set.name == name
            names = kernel_set.public_names()
            assert not set(names) & set(public), names  # no name in two tables
            public.update(names)
    assert tables == len(kernels.FAMILIES)
    assert kernels.__all__ == sorted(public)
    for name, kernel in public.items():
        assert getattr(kernels, name) is kernel, name
    assert set(dir(kernels)) >= set(public)
    in_specs = {ks.name for spec in registry.BUILTIN for ks in spec.kernel_sets()}
    assert {name for name in public if not name.endswith("_parallel")} == in_specs


def test_import_compiles_nothing_and_imports_no_numba():
    code = ("import sys, lossjit; import lossjit.registry, lossjit.cli; "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_readme_table_of_losses_is_generated_from_the_registry():
    from pathlib import Path

    from lossjit.cli import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("<!-- losses:start -->\n")[1].split("\n<!-- losses:end -->")[0]
    assert table == markdown_table([spec.name for spec in registry.BUILTIN])
