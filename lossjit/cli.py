"""The ``lossjit`` command: a thin Click layer generated from the registry.

- ``lossjit compute LOSS PREDICTIONS [TARGETS] [options]`` prints the loss on stdout and
  writes the gradient to a file; each loss's options are typed Click options built from its
  registry entry (``lossjit compute focal --help``).
- ``lossjit list [--json | --markdown]`` and ``lossjit info LOSS`` describe the losses.

stdout carries data only; messages go to stderr. A bad input gives one line and exit 1, a
usage error exit 2, never a traceback. ``--help``, ``list`` and ``info`` do not import Numba
(nothing is compiled).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import click

from lossjit import registry
from lossjit.errors import LossjitError
from lossjit.registry import LossSpec, Param


def use_cache_dir() -> str:
    """Point Numba at the CLI's cache directory (before Numba is imported)."""
    from lossjit.cache import use_cache_dir as point

    return point()


def _say(message: str) -> None:
    click.echo(f"lossjit: {message}", err=True)


def _option_name(param: Param) -> str:
    return "--" + param.name.replace("_", "-")


def _click_option(param: Param) -> click.Option:
    """The Click option of one loss option; arrays are parsed later (file or list)."""
    default = param.default
    if isinstance(default, bool):
        default = str(default).lower()
    shown = "" if default is None or param.required else f" [default: {default}]"
    text = param.help + (f" ({param.expect})" if param.expect else "") + shown
    if param.kind == "bool":
        flag = _option_name(param)
        return click.Option([f"{flag}/--no-{flag[2:]}", param.name], default=None, help=text)
    kind: Any = {"float": float, "int": int}.get(param.kind, str)
    metavar = {"array": "FILE|LIST", "float_or_array": "NUMBER|FILE|LIST"}.get(param.kind)
    if param.required:  # no default at all: Click 8.2+ counts default=None as given
        return click.Option([_option_name(param), param.name], type=kind, metavar=metavar,
                            help=text, required=True)
    return click.Option([_option_name(param), param.name], type=kind, default=None,
                        metavar=metavar, help=text)


def _option_values(spec: LossSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The options the user set, with arrays read from files or comma-separated lists."""
    from lossjit.io import parse_array_option

    values: dict[str, Any] = {}
    for param in spec.params:
        value = given.get(param.name)
        if value is None:
            continue
        if param.kind == "float_or_array":
            try:
                value = float(value)
            except ValueError:
                value = parse_array_option(value, what=_option_name(param))
        elif param.kind == "array":
            value = parse_array_option(value, what=_option_name(param))
        values[param.name] = value
    return values


def _json_safe(value: Any) -> Any:
    """``value`` as JSON data: arrays become lists, NaN and infinities become null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _grad_out_option(param: Param) -> str:
    """The ``--<option>-grad-out`` of an option the loss can be differentiated by."""
    return f"{_option_name(param)}-grad-out"


#: The option that names each output file.
_OUTPUT_OPTIONS = {"predictions": "--grad-out", "hess": "--hess-out"}


def _import_compute_modules() -> None:
    """Point Numba at the CLI's cache, then import what computing needs (before the clock)."""
    use_cache_dir()
    for module in ("numpy", "lossjit.api", "lossjit.io", "lossjit.layouts"):
        importlib.import_module(module)


def _sample_weight(text: str | None) -> Any:
    """The ``--sample-weight`` array (a file or a comma-separated list), or None."""
    from lossjit.io import parse_array_option

    return None if text is None else parse_array_option(text, what="--sample-weight")


def _output_paths(predictions_path: str, grad_out: str | None, no_grad: bool,
                  outputs: dict[str, str]) -> dict[str, str]:
    """Where each output goes: "predictions" (the gradient, unless --no-grad), then
    ``outputs``; '-' is refused, since stdout carries the loss."""
    from lossjit.io import default_grad_path

    written: dict[str, str] = {}
    if not no_grad:
        written["predictions"] = grad_out or default_grad_path(predictions_path)
    written.update(outputs)
    for key, path in written.items():
        if path == "-":
            option = _OUTPUT_OPTIONS.get(key) or "--" + key.replace("_", "-") + "-grad-out"
            raise LossjitError(f"{option}: '-' is not allowed, stdout carries the loss; give "
                               "a file path")
    return written


def _read_inputs(spec: LossSpec, predictions_path: str,
                 targets_path: str | None) -> tuple[Any, Any]:
    """The predictions and targets arrays; targets given to a loss without any are ignored,
    with a message."""
    from lossjit.io import read_array

    predictions = read_array(predictions_path, what="predictions")
    targets = None
    if targets_path is not None:
        if spec.targets == "none":
            _say(f"{spec.name} takes no targets; ignoring {targets_path}")
        else:
            targets = read_array(targets_path, what="targets")
    return predictions, targets


@contextlib.contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Record the warnings raised in the block; once it succeeds, say each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        _say(f"warning: {warning.message}")


def _compute(spec: LossSpec, predictions: Any, targets: Any, reduction: str, no_grad: bool,
             options: dict[str, Any], sample_weight: Any, empty: str,
             outputs: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """The loss value, and the arrays to write by output key ("predictions", "hess", option
    names); a damaged kernel cache is a LossjitError."""
    from lossjit import api

    wrt = ("predictions", *(name for name in outputs if name != "hess"))
    try:
        value, grads, hess = api.compute(
            spec.name, predictions, targets, reduction=reduction,
            want_grad=not no_grad or len(wrt) > 1, sample_weight=sample_weight,
            empty=empty, wrt=wrt, hessian="hess" in outputs, **options)
    except (EOFError, pickle.UnpicklingError) as exc:
        raise LossjitError(f"the compiled-kernel cache in {os.environ['NUMBA_CACHE_DIR']} "
                           f"is damaged ({type(exc).__name__}); run `lossjit cache clear`"
                           ) from None
    return value, {**grads, "hess": hess}


def _input_files(predictions_path: str, targets_path: str | None, given: dict[str, Any],
                 sample_weight: str | None) -> list[str]:
    """The files read as inputs (the arrays and the options naming a file): never written."""
    protect = [p for p in (predictions_path, targets_path) if p and p != "-"]
    protect += [v for v in (*given.values(), sample_weight)
                if isinstance(v, str) and os.path.isfile(v)]
    return protect


def _write_outputs(written: dict[str, str], arrays: dict[str, Any],
                   protect: list[str]) -> None:
    """Write each output array to its path, never over a file in ``protect``; say where."""
    import numpy as np

    from lossjit.io import write_array

    for key, path in written.items():
        write_array(path, np.asarray(arrays[key]), protect=protect)
        what = {"predictions": "gradient", "hess": "Hessian diagonal"}.get(
            key, f"gradient w.r.t. {key}")
        _say(f"{what} written to {path}")


def _report(spec: LossSpec, value: Any, predictions: Any, reduction: str,
            options: dict[str, Any], weighted: bool, empty: str, written: dict[str, str],
            outputs: dict[str, str], seconds: float) -> dict[str, Any]:
    """The ``--json`` record of one computation."""
    import numpy as np

    from lossjit.layouts import FLOATS

    return {
        "loss": _json_safe(value),
        "name": spec.name,
        "reduction": reduction,
        "params": {k: _json_safe(v) for k, v in spec.options(options).items()},
        "sample_weight": weighted,
        "empty": empty,
        "shape": list(np.shape(predictions)),
        "dtype": str(predictions.dtype if predictions.dtype in FLOATS else np.float64),
        "grad": written.get("predictions"),
        **{f"{key}_grad" if key != "hess" else key: path for key, path in outputs.items()},
        "seconds": seconds,
    }


def _print_loss(value: Any, reduction: str) -> None:
    """Print the loss: one number, or one per line for ``--reduction none``."""
    import numpy as np

    if reduction == "none":
        click.echo("\n".join(repr(float(v)) for v in np.ravel(value)))
    else:
        click.echo(repr(float(value)))


def _run_compute(spec: LossSpec, predictions_path: str, targets_path: str | None, *,
                 reduction: str, grad_out: str | None, no_grad: bool, as_json: bool,
                 given: dict[str, Any], sample_weight: str | None, empty: str,
                 outputs: dict[str, str]) -> None:
    """Compute and report. ``given`` holds the loss's options as typed, ``outputs`` the extra
    output paths: "hess" and the names of options to differentiate by."""
    _import_compute_modules()
    started = time.perf_counter()
    options = _option_values(spec, given)
    weights = _sample_weight(sample_weight)
    written = _output_paths(predictions_path, grad_out, no_grad, outputs)
    predictions, targets = _read_inputs(spec, predictions_path, targets_path)
    with _warnings_on_stderr():
        value, arrays = _compute(spec, predictions, targets, reduction, no_grad, options,
                                 weights, empty, outputs)
    _write_outputs(written, arrays,
                   _input_files(predictions_path, targets_path, given, sample_weight))
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(_report(spec, value, predictions, reduction, options,
                                      weights is not None, empty, written, outputs, seconds)))
    else:
        _print_loss(value, reduction)


def _extra_outputs(given: dict[str, Any], differentiable: list[Param]) -> dict[str, str]:
    """Take ``--hess-out`` and each ``--<option>-grad-out`` out of ``given``: the paths set,
    by output key ("hess" or the option's name)."""
    outputs = {}
    hess_out = given.pop("hess_out", None)
    if hess_out:
        outputs["hess"] = hess_out
    for p in differentiable:
        path = given.pop(f"{p.name}_grad_out", None)
        if path:
            outputs[p.name] = path
    return outputs


def _input_params(spec: LossSpec) -> list[click.Parameter]:
    """What every per-loss command reads: PREDICTIONS, TARGETS, the reduction, the loss's own
    options, --sample-weight and --empty."""
    reductions = ", ".join(spec.reductions[1:-1]) + " or " + spec.reductions[-1]
    return [
        click.Argument(["predictions"], metavar="PREDICTIONS"),
        click.Argument(["targets"], required=spec.targets == "required", metavar="TARGETS"
                       if spec.targets == "required" else "[TARGETS]"),
        click.Option(["--reduction"], type=click.Choice(spec.reductions), default="mean",
                     show_default=True,
                     help=f"mean (or {reductions}); none gives one loss per term"),
        *[_click_option(p) for p in spec.params],
        click.Option(["--sample-weight", "sample_weight"], metavar="FILE|LIST",
                     help="one weight per loss term; the mean becomes sum(w l) / sum(w)"),
        click.Option(["--empty"], type=click.Choice(registry.EMPTY_CHOICES), default="nan",
                     show_default=True, help="what a mean over zero terms gives"),
    ]


def _inputs_help(spec: LossSpec) -> str:
    targets_help = {"required": "", "optional": " (optional)",
                    "none": " (ignored: this loss has no targets)"}[spec.targets]
    return (f"{spec.formula}\n\nInputs: {spec.inputs}."
            + (f" Targets{targets_help}." if targets_help else "")
            + "\n\nPREDICTIONS and TARGETS are .npy, .npz, .csv, .tsv or .txt files, or - "
            "for stdin.")


def _loss_command(spec: LossSpec) -> click.Command:
    """``lossjit compute <loss>``, with the loss's own options."""
    differentiable = [p for p in spec.params if p.differentiable]
    params: list[click.Parameter] = [
        *_input_params(spec),
        click.Option(["--grad-out"], metavar="PATH",
                     help="where to write the gradient [default: <predictions stem>.grad"
                          "<ext> in the current directory]"),
        click.Option(["--no-grad"], is_flag=True, help="do not write the gradient"),
        *([click.Option(["--hess-out", "hess_out"], metavar="PATH",
                        help=f"also write the Hessian's diagonal: {spec.hessian}")]
          if spec.hessian else []),
        *[click.Option([_grad_out_option(p), f"{p.name}_grad_out"], metavar="PATH",
                       help=f"also write the gradient w.r.t. {p.name}")
          for p in differentiable],
        click.Option(["--json", "as_json"], is_flag=True,
                     help="print one JSON object: loss, name, reduction, params, shape, "
                          "dtype, output paths, seconds"),
    ]

    def callback(predictions: str, targets: str | None, reduction: str, grad_out: str | None,
                 no_grad: bool, as_json: bool, sample_weight: str | None, empty: str,
                 **given: Any) -> None:
        if grad_out and no_grad:
            raise click.UsageError("--grad-out and --no-grad exclude each other")
        outputs = _extra_outputs(given, differentiable)
        try:
            _run_compute(spec, predictions, targets, reduction=reduction, grad_out=grad_out,
                         no_grad=no_grad, as_json=as_json, given=given,
                         sample_weight=sample_weight, empty=empty, outputs=outputs)
        except LossjitError as exc:
            raise click.ClickException(str(exc)) from None

    return click.Command(
        spec.name, params=params, callback=callback,
        help=_inputs_help(spec) + " The loss goes to stdout, the gradient to a file.",
        short_help=spec.formula,
    )


def _check_report(result: Any, against: str | None) -> list[str]:
    """One line per comparison of a gradient check."""
    reference = "your gradient" if against else "finite difference"
    lines = []
    for check in (result, result.hessian):
        if check is None:
            continue
        where = ", ".join(str(i) for i in check.position)
        ours, theirs = ((reference, "lossjit") if against else ("lossjit", reference))
        lines.append(f"{check.what}: worst error {check.error:.3g} at ({where}): {ours} "
                     f"{check.value!r}, {theirs} {check.reference!r} ({check.checked} "
                     "elements)")
    return lines


def _check_command(spec: LossSpec) -> click.Command:
    """``lossjit check <loss>``: its gradient against finite differences, or against a
    gradient computed elsewhere."""
    params: list[click.Parameter] = [
        *_input_params(spec),
        click.Option(["--samples"], type=click.IntRange(1), default=None, metavar="N",
                     help="check N elements drawn at random [default: all]"),
        click.Option(["--seed"], type=int, default=0, show_default=True,
                     help="the seed of --samples"),
        click.Option(["--tol"], type=click.FloatRange(0.0), default=1e-5, show_default=True,
                     help="exit 1 when the worst error is above this"),
        click.Option(["--against"], metavar="FILE",
                     help="a gradient computed elsewhere, compared with lossjit's"),
        click.Option(["--json", "as_json"], is_flag=True,
                     help="print one JSON object per comparison"),
    ]

    def callback(predictions: str, targets: str | None, reduction: str,
                 sample_weight: str | None, empty: str, samples: int | None, seed: int,
                 tol: float, against: str | None, as_json: bool, **given: Any) -> None:
        _import_compute_modules()
        from lossjit.gradcheck import check_grad
        from lossjit.io import read_array

        try:
            x, y = _read_inputs(spec, predictions, targets)
            theirs = None if against is None else read_array(against, what="--against")
            with _warnings_on_stderr():
                result = check_grad(spec.name, x, y, reduction=reduction,
                                    sample_weight=_sample_weight(sample_weight), empty=empty,
                                    samples=samples, seed=seed, against=theirs,
                                    **_option_values(spec, given))
        except LossjitError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            for check in (result, result.hessian):
                if check is not None:
                    fields = {k: _json_safe(v) for k, v in vars(check).items()
                              if k != "hessian"}
                    click.echo(json.dumps({**fields, "position": list(check.position),
                                           "ok": check.ok(tol), "tol": tol}))
        else:
            click.echo("\n".join(_check_report(result, against)))
        if not result.ok(tol):
            _say(f"above the tolerance {tol:g}")
            sys.exit(1)

    return click.Command(
        spec.name, params=params, callback=callback,
        help=_inputs_help(spec) + " Prints the worst error of the gradient (and the Hessian's "
             "diagonal) against central finite differences, or against --against FILE; exits "
             "1 above --tol.\n\n\b\nExample:\n  lossjit check focal logits.npy labels.npy "
             "--gamma 1.5 --samples 100",
        short_help=spec.formula,
    )


class LossGroup(click.Group):
    """A command with one sub-command per registered loss and alias, built by ``build``."""

    build = staticmethod(_loss_command)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return registry.names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        try:
            spec = registry.resolve(cmd_name)
        except LossjitError:
            return None
        return self.build(spec)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            raise click.UsageError(
                f"unknown loss {name!r}; known losses: {', '.join(registry.names())}", ctx)
        return super().resolve_command(ctx, args)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lossjit", message="lossjit %(version)s")
def cli() -> None:
    """Loss functions and their exact gradients, as fused Numba kernels.

    \b
    lossjit compute mse preds.npy targets.npy      loss on stdout, gradient to preds.grad.npy
    lossjit compute focal logits.npy labels.npy --gamma 1.5 --json
    lossjit list                                   every loss
    lossjit info cross_entropy                     one loss: formula, inputs, options
    """


class ComputeGroup(LossGroup):
    """``lossjit compute LOSS ...``."""

    build = staticmethod(_loss_command)


class CheckGroup(LossGroup):
    """``lossjit check LOSS ...``."""

    build = staticmethod(_check_command)


@cli.group(cls=ComputeGroup)
def compute() -> None:
    """Compute LOSS of PREDICTIONS against TARGETS; print it and write the gradient.

    Run `lossjit compute LOSS --help` for a loss's options.
    """


@cli.group(cls=CheckGroup)
def check() -> None:
    """Check the gradient of LOSS on PREDICTIONS and TARGETS against finite differences (or
    against a gradient computed elsewhere, --against FILE).

    Run `lossjit check LOSS --help` for a loss's options.
    """


def _describe(spec: LossSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "family": spec.family,
        "formula": spec.formula,
        "gradient": spec.gradient,
        "layout": spec.inputs,
        "targets": spec.targets,
        "params": [{"name": p.name, "kind": p.kind, "default": p.default, "help": p.help,
                    "expect": p.expect, "differentiable": p.differentiable,
                    "required": p.required}
                   for p in spec.params],
        "reductions": list(spec.reductions),
        "hessian": spec.hessian or None,
        "reference": spec.reference,
        "notes": spec.notes,
    }


def _options_text(spec: LossSpec) -> str:
    return ", ".join(f"{p.name}={p.default}" for p in spec.params) or "none"


#: The options every loss has, as ``lossjit info`` shows them.
COMMON_HELP = (
    ("--sample-weight", "one weight per loss term; the mean becomes sum(w l) / sum(w)"),
    ("--empty", "what a mean over zero terms gives: nan (default), zero or error"),
)


def markdown_table(names: list[str] | None = None) -> str:
    """The README's table of losses (``names``, default all), generated from the registry."""
    lines = ["| loss | aliases | family | formula | inputs | options (defaults) | Hessian "
             "| reference |",
             "|---|---|---|---|---|---|---|---|"]
    for name in registry.names() if names is None else names:
        spec = registry.resolve(name)
        cells = [f"`{spec.name}`", ", ".join(spec.aliases) or "-", spec.family, spec.formula,
                 spec.inputs, _options_text(spec), "yes" if spec.hessian else "no",
                 spec.reference or "-"]
        lines.append("| " + " | ".join(cell.replace("|", "&#124;") for cell in cells) + " |")
    return "\n".join(lines)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array of the losses")
@click.option("--markdown", is_flag=True, help="print the table of losses in Markdown")
def list_losses(as_json: bool, markdown: bool) -> None:
    """List every loss: name, family, whether it has a Hessian (grad_hess), formula, aliases;
    then, indented, its inputs, options with defaults and reference."""
    specs = [registry.resolve(name) for name in registry.names()]
    if as_json:
        click.echo(json.dumps([_describe(s) for s in specs]))
        return
    if markdown:
        click.echo(markdown_table())
        return
    width = max(len(s.name) for s in specs)
    family_width = max(len(s.family) for s in specs)
    indent = " " * (width + 2)
    for s in specs:
        aliases = f"  (alias {', '.join(s.aliases)})" if s.aliases else ""
        hessian = "hessian" if s.hessian else "-      "
        click.echo(f"{s.name:<{width}}  {s.family:<{family_width}}  {hessian}  "
                   f"{s.formula}{aliases}")
        click.echo(f"{indent}inputs: {s.inputs}")
        click.echo(f"{indent}options: {_options_text(s)}")
        click.echo(f"{indent}reference: {s.reference or '-'}")


@cli.command()
@click.argument("loss")
@click.option("--json", "as_json", is_flag=True, help="print the description as JSON")
def info(loss: str, as_json: bool) -> None:
    """Describe LOSS: formula, gradient, inputs, options with defaults, reference."""
    try:
        spec = registry.resolve(loss)
    except LossjitError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_describe(spec)))
        return
    rows = [
        ("name", spec.name),
        ("aliases", ", ".join(spec.aliases) or "-"),
        ("family", spec.family),
        ("formula", spec.formula),
        ("gradient", spec.gradient or "-"),
        ("inputs", spec.inputs),
        ("targets", spec.targets),
        ("reduction", "mean (default), " + ", ".join(spec.reductions[1:])),
        ("hessian", spec.hessian + " (lossjit.grad_hess, --hess-out)" if spec.hessian
         else "none: grad_hess does not cover this loss"),
        ("reference", spec.reference or "-"),
    ]
    if spec.notes:
        rows.append(("notes", spec.notes))
    for key, value in rows:
        click.echo(f"{key + ':':<11}{value}")
    click.echo("options:" + ("" if spec.params else "    none"))
    for p in spec.params:
        expect = f" ({p.expect})" if p.expect else ""
        extra = f"; differentiable: wrt='{p.name}', {_grad_out_option(p)}" if p.differentiable \
            else ""
        default = "required" if p.required else f"default {p.default!s:<8}"
        click.echo(f"  {_option_name(p):<18}{p.kind:<15}{default:<17}{p.help}{expect}{extra}")
    click.echo("every loss also takes:")
    for option, text in COMMON_HELP:
        click.echo(f"  {option:<18}{text}")


@cli.command()
@click.argument("losses", nargs=-1, metavar="[LOSS]...")
@click.option("--size", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="numbers in the predictions (class losses: rows of 10 classes)")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--peers", default="numpy,torch,jax", show_default=True,
              help="what to compare with: numpy (always), torch, jax, sklearn if installed")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
def bench(losses: tuple[str, ...], size: int, dtype: str, peers: str, as_json: bool) -> None:
    """Time value-and-gradient of each LOSS (default: all) here, against NumPy and, when
    installed, PyTorch and JAX: median milliseconds, and how many times faster lossjit is."""
    use_cache_dir()
    from lossjit_bench import run_case

    chosen = [p.strip() for p in peers.split(",") if p.strip()]
    try:
        names = [registry.resolve(name).name for name in losses] or registry.names()
    except LossjitError as exc:
        raise click.ClickException(str(exc)) from None
    results = []
    for name in names:
        try:  # the harness lays the numbers out as the loss's layout wants them
            result = run_case(name, size, dtype, peers=chosen, min_time=0.05, max_time=2.0)
        except KeyError:  # a loss of the user's own, with no NumPy reference to compare with
            _say(f"{name}: skipped (no benchmark reference)")
            continue
        except ValueError as exc:  # a layout the harness cannot feed
            _say(f"{name}: skipped ({exc})")
            continue
        results.append(result)
        if as_json:
            continue
        times = result["times"]
        ours = times["lossjit_out"]
        cells = "  ".join(f"{peer} {times[peer] * 1e3:8.3f} ms ({times[peer] / ours:5.1f}x)"
                          for peer in chosen if peer in times)
        click.echo(f"{name:<21} lossjit {ours * 1e3:8.3f} ms   {cells}")
        for peer, why in result["skipped"].items():
            _say(f"{name}: {peer} skipped ({why})")
    if as_json:
        for result in results:
            result.pop("samples", None)
        click.echo(json.dumps(results))


@cli.group()
def cache() -> None:
    """The compiled-kernel cache: where it is, clearing it, compiling ahead of use."""


@cache.command("path")
def cache_path() -> None:
    """Print the cache directory (NUMBA_CACHE_DIR, or a per-user, per-version directory)."""
    from lossjit.cache import cache_dir, usage

    path = cache_dir()
    files, size = usage(path)
    click.echo(path)
    _say(f"{files} kernel files, {size / 1e6:.1f} MB")


@cache.command("clear")
def cache_clear() -> None:
    """Remove lossjit's compiled kernels (and nothing else) from the cache directory."""
    from lossjit.cache import cache_dir, clear

    path = cache_dir()
    files, size = clear(path)
    _say(f"removed {files} kernel files ({size / 1e6:.1f} MB) from {path}")


@cache.command("warm")
@click.argument("losses", nargs=-1, metavar="[LOSS]...")
@click.option("--dtype", "dtypes", type=click.Choice(["float32", "float64"]), multiple=True,
              help="only this dtype (repeatable) [default: both]")
@click.option("--no-parallel", is_flag=True, help="skip the multi-threaded twins")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="compile in this many processes [default: the number of cores]")
def cache_warm(losses: tuple[str, ...], dtypes: tuple[str, ...], no_parallel: bool,
               jobs: int | None) -> None:
    """Compile every loss (or each LOSS) for float32 and float64 ahead of use: for images,
    and before fanning out many processes."""
    path = use_cache_dir()
    from lossjit.cache import warm

    try:
        names = [registry.resolve(name).name for name in losses] or None
        done = warm(names, dtypes=dtypes or ("float32", "float64"), parallel=not no_parallel,
                    jobs=jobs or os.cpu_count() or 1,
                    progress=lambda w: _say(f"{w.name}: {w.compiled} compiled, {w.loaded} "
                                            f"loaded, {w.seconds:.1f} s"))
    except LossjitError as exc:
        raise click.ClickException(str(exc)) from None
    _say(f"warmed {len(done)} losses into {path}")


def main() -> None:
    """Entry point of the ``lossjit`` script: no traceback reaches the user."""
    try:
        cli.main(prog_name="lossjit", standalone_mode=True)
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head -1`): exit quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except MemoryError:
        _say("out of memory")
        sys.exit(1)
    except Exception as exc:  # an internal error: one line, never a traceback
        _say(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
        sys.exit(1)
