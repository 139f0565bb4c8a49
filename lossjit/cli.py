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
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click

from lossjit import registry
from lossjit.errors import Interrupted, LossjitError, UsageError, interrupt
from lossjit.registry import LossSpec, Param


def use_cache_dir() -> str:
    """Point Numba at the CLI's cache directory (before Numba is imported)."""
    from lossjit.cache import use_cache_dir as point

    return point()


def _say(message: str) -> None:
    click.echo(f"lossjit: {message}", err=True)


def _option_name(param: Param) -> str:
    return "--" + param.name.replace("_", "-")


#: What the help of every command that reads arrays says about naming them.
SOURCES_HELP = ("PREDICTIONS and TARGETS (and array options) are files: .npy, .npz, CSV, TSV, "
                "text, Parquet/Arrow, optionally .gz/.bz2/.xz/.zst compressed, or - for "
                "stdin; FILE:COLUMN, FILE:KEY, FILE:c1,c2 or FILE:c1..c3 select columns or "
                "npz keys. Without TARGETS, PREDICTIONS may name one file holding both (keys "
                "or columns predictions/targets, preds/targets, y_pred/y_true, "
                "logits/labels).")


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
    kind: Any = {"float": float, "int": int}.get(param.kind, click.Path())
    metavar = {"array": "FILE|LIST", "float_or_array": "NUMBER|FILE|LIST"}.get(param.kind)
    if param.required:  # no default at all: Click 8.2+ counts default=None as given
        return click.Option([_option_name(param), param.name], type=kind, metavar=metavar,
                            help=text, required=True)
    return click.Option([_option_name(param), param.name], type=kind, default=None,
                        metavar=metavar, help=text)


def _grad_out_option(param: Param) -> str:
    """The ``--<option>-grad-out`` of an option the loss can be differentiated by."""
    return f"{_option_name(param)}-grad-out"


def _import_compute_modules() -> None:
    """Point Numba at the CLI's cache, then import what computing needs (before the clock)."""
    use_cache_dir()
    for module in ("numpy", "lossjit.api", "lossjit.jobs", "lossjit.layouts"):
        importlib.import_module(module)


@contextlib.contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Record the warnings raised in the block; once it succeeds, say each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        _say(f"warning: {warning.message}")


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """A LossjitError as one line on stderr and exit 1 (a UsageError: exit 2)."""
    try:
        yield
    except UsageError as exc:
        if _debugging():
            traceback.print_exc()
        raise click.UsageError(str(exc)) from None
    except LossjitError as exc:
        if _debugging():
            traceback.print_exc()
        raise click.ClickException(str(exc)) from None


def _classes(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(name.strip() for name in text.split(","))


def _job(spec: LossSpec, predictions: str, targets: str | None, reduction: str,
         sample_weight: str | None, empty: str, header: bool | None, classes: str | None,
         given: dict[str, Any], outputs: dict[str, str] | None = None,
         stream_format: str = "csv") -> Any:
    """The job the command line describes (``given`` still holds --nan-policy)."""
    from lossjit.jobs import Job

    return Job(spec.name, predictions, targets, reduction=reduction,
               options={p.name: given.get(p.name) for p in spec.params},
               sample_weight=sample_weight, empty=empty, outputs=outputs or {}, header=header,
               classes=_classes(classes), stream_format=stream_format,
               nan_policy=given.get("nan_policy", "propagate"))


def _input_params(spec: LossSpec) -> list[click.Parameter]:
    """What every per-loss command reads: PREDICTIONS, TARGETS, the reduction, the loss's own
    options, --sample-weight, --empty and how text inputs are read."""
    reductions = ", ".join(spec.reductions[1:-1]) + " or " + spec.reductions[-1]
    return [
        click.Argument(["predictions"], metavar="PREDICTIONS", type=click.Path()),
        click.Argument(["targets"], required=False, type=click.Path(),
                       metavar="TARGETS" if spec.targets == "required" else "[TARGETS]"),
        click.Option(["--reduction"], type=click.Choice(spec.reductions), default="mean",
                     show_default=True,
                     help=f"mean (or {reductions}); none gives one loss per term"),
        *[_click_option(p) for p in spec.params],
        click.Option(["--sample-weight", "sample_weight"], metavar="FILE|LIST",
                     type=click.Path(),
                     help="one weight per loss term; the mean becomes sum(w l) / sum(w)"),
        click.Option(["--empty"], type=click.Choice(registry.EMPTY_CHOICES), default="nan",
                     show_default=True, help="what a mean over zero terms gives"),
        click.Option(["--nan-policy"], type=click.Choice(["propagate", "raise", "omit"]),
                     default="propagate", show_default=True,
                     help="NaN inputs: give NaN (and warn), an error, or leave their terms "
                          "out"),
        click.Option(["--header/--no-header"], default=None,
                     help="text inputs: the first row is (is not) a header [default: only "
                          "when every field is a name]"),
        click.Option(["--classes"], metavar="A,B,...",
                     help="the class names, in order, of text class labels [default: the "
                          "logits' column names]"),
    ]


def _inputs_help(spec: LossSpec) -> str:
    targets_help = {"required": "", "optional": " (optional)",
                    "none": " (ignored: this loss has no targets)"}[spec.targets]
    return (f"{spec.formula}\n\nInputs: {spec.inputs}."
            + (f" Targets{targets_help}." if targets_help else "") + "\n\n" + SOURCES_HELP)


def _outputs(spec: LossSpec, predictions: str, grad_out: str | None, no_grad: bool,
             given: dict[str, Any]) -> dict[str, str]:
    """Take the output options out of ``given``: the paths by output key, the gradient's
    default path first (unless --no-grad)."""
    from lossjit.readers import Source
    from lossjit.writers import default_grad_path

    outputs = {}
    if not no_grad:
        outputs["grad"] = grad_out or default_grad_path(Source.parse(predictions).path)
    for key in ("hess", "loss", *(f"{p.name}_grad" for p in spec.params if p.differentiable)):
        path = given.pop(f"{key}_out", None)
        if path:
            outputs[key] = path
    return outputs


#: Stands in for the leading "-" of a stdin selector ("-:pred") while Click parses, which
#: would take it for an option.
_STDIN_SELECTOR = "\x01stdin"


class OneJob(click.Command):
    """A command that runs one job: stdin selectors (``-:pred``) are arguments, and extra
    arguments point to ``lossjit batch``. Its ``help`` is written when it is shown
    (``help_text``): the examples name the loss's layout, which imports NumPy, so listing the
    commands (``lossjit compute --help``) stays quick."""

    def __init__(self, *args: Any, help_text: Callable[[], str], **kwargs: Any) -> None:
        self._help_text = help_text
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def help(self) -> str:
        return self._help_text()

    @help.setter
    def help(self, value: str | None) -> None:  # Click's __init__ sets it: help_text rules
        pass

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = [_STDIN_SELECTOR + a[1:] if a.startswith("-:") else a for a in args]
        try:
            rest = super().parse_args(ctx, args)
        except click.UsageError as exc:
            if "unexpected extra argument" in exc.message:
                exc.message += (" (compute runs one job: PREDICTIONS [TARGETS]; to run many "
                                "in one process, list them for `lossjit batch`)")
            raise
        for name, value in ctx.params.items():
            if isinstance(value, str) and value.startswith(_STDIN_SELECTOR):
                ctx.params[name] = "-" + value[len(_STDIN_SELECTOR):]
        return rest


def _loss_command(spec: LossSpec) -> click.Command:
    """``lossjit compute <loss>``, with the loss's own options."""
    from lossjit.records import FORMATS

    differentiable = [p for p in spec.params if p.differentiable]
    params: list[click.Parameter] = [
        *_input_params(spec),
        click.Option(["--grad-out"], metavar="PATH", type=click.Path(),
                     help="where to write the gradient, - for stdout [default: <predictions "
                          "stem>.grad<ext> in the current directory]"),
        click.Option(["--no-grad"], is_flag=True, help="do not write the gradient"),
        *([click.Option(["--hess-out", "hess_out"], metavar="PATH", type=click.Path(),
                        help=f"also write the Hessian's diagonal: {spec.hessian}")]
          if spec.hessian else []),
        click.Option(["--loss-out", "loss_out"], metavar="PATH", type=click.Path(),
                     help="also write the per-term losses (the reduction's terms)"),
        *[click.Option([_grad_out_option(p), f"{p.name}_grad_out"], metavar="PATH",
                       type=click.Path(), help=f"also write the gradient w.r.t. {p.name}")
          for p in differentiable],
        click.Option(["--format", "fmt"], type=click.Choice(FORMATS), default=None,
                     help="how to print the record: the loss as text (default), or loss, "
                          "name, options, shape, dtype, outputs and timings as json, ndjson "
                          "or csv"),
        click.Option(["--json", "as_json"], is_flag=True, help="short for --format json"),
        click.Option(["--grad-format"], type=click.Choice(["csv", "tsv", "txt", "npy"]),
                     default="csv", show_default=True,
                     help="the format of an output written to - (stdout)"),
        click.Option(["--stream/--no-stream"], default=None,
                     help=".npy and .zarr inputs: run piece by piece from the files, in "
                          "bounded memory, writing .npy outputs [default: Zarr inputs, and "
                          ".npy inputs larger than --memory]"),
        click.Option(["--memory"], default="256MiB", show_default=True, metavar="SIZE",
                     help="the memory a streamed run's pieces may use (256MiB, 1G, ...)"),
        click.Option(["--dask"], is_flag=True,
                     help="run on a local Dask cluster (the dask extra): the workers read the "
                          ".npy or .zarr inputs chunk by chunk and write the .npy outputs"),
        click.Option(["--workers"], type=click.IntRange(1), default=None, metavar="N",
                     help="--dask: worker processes of the local cluster [default: 2]"),
        click.Option(["--scheduler"], metavar="ADDRESS",
                     help="run on the Dask cluster at ADDRESS (tcp://host:port); its workers "
                          "must see the paths"),
        click.Option(["-q", "--quiet"], is_flag=True,
                     help="no progress bar (one is shown on a terminal for long streamed "
                          "runs)"),
    ]

    def callback(predictions: str, targets: str | None, reduction: str, grad_out: str | None,
                 no_grad: bool, fmt: str | None, as_json: bool, grad_format: str,
                 sample_weight: str | None, empty: str, header: bool | None,
                 classes: str | None, stream: bool | None, memory: str, quiet: bool,
                 dask: bool, workers: int | None, scheduler: str | None,
                 **given: Any) -> None:
        if grad_out and no_grad:
            raise click.UsageError("--grad-out and --no-grad exclude each other")
        if fmt and as_json and fmt != "json":
            raise click.UsageError(f"--json and --format {fmt} exclude each other")
        _import_compute_modules()
        from lossjit import jobs
        from lossjit.records import render

        with _user_errors():
            job = _job(spec, predictions, targets, reduction, sample_weight, empty, header,
                       classes, given, _outputs(spec, predictions, grad_out, no_grad, given),
                       grad_format)
            job.stream, job.memory = stream, memory
            job.dask, job.workers, job.scheduler = dask, workers, scheduler
            with _warnings_on_stderr():
                done = jobs.run(job, say=_say, progress=None if quiet else _progress_bar())
        # an output on stdout keeps stdout one clean stream: the record goes to stderr
        click.echo(render(done, "json" if as_json else fmt or "text"), nl=False,
                   err="-" in job.outputs.values())

    return OneJob(
        spec.name, params=params, callback=callback,
        help_text=lambda: _inputs_help(spec) + " The loss goes to stdout, the gradient to a "
        f"file.\n\n\b\nExamples:\n  {_example(spec, 'compute')}\n"
        "  lossjit compute mse results.csv:pred results.csv:label --grad-out - > g.csv",
        short_help=spec.formula,
    )


def _progress_bar() -> Callable[[int, str], Callable[[int], None]] | None:
    """A progress bar on stderr for a streamed run, only on a terminal, shown once the run
    has taken a second (``LOSSJIT_PROGRESS_AFTER`` seconds): rows of axis 0 done, their rate
    and the time left."""
    if not sys.stderr.isatty():
        return None
    import time

    try:
        after = float(os.environ.get("LOSSJIT_PROGRESS_AFTER", "1"))
    except ValueError:
        after = 1.0

    def start(total: int, label: str) -> Callable[[int], None]:
        started = time.monotonic()
        state: dict[str, Any] = {"bar": None, "done": 0}

        def update(done: int) -> None:
            elapsed = time.monotonic() - started
            bar = state["bar"]
            if bar is None:
                if elapsed < after or done >= total:
                    state["done"] = done
                    return
                bar = state["bar"] = click.progressbar(
                    length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True,
                    item_show_func=lambda rate: None if rate is None else f"{rate}/s")
                bar.__enter__()
            bar.update(done - state["done"], current_item=f"{done / elapsed:,.0f} rows")
            state["done"] = done
            if done >= total:
                bar.__exit__(None, None, None)

        return update

    return start


def _example(spec: LossSpec, command: str) -> str:
    """A command line of ``spec`` on the sample data."""
    files = {"ClassAxis": "data/logits.npy data/labels.npy",
             "Stacked": "data/triplets.npy" if spec.name == "triplet"
             else "data/pairs.npy data/pair_labels.npy"}.get(type(spec.layout).__name__,
                                                              "data/preds.npy data/targets.npy")
    return f"lossjit {command} {spec.name} {files}"


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
        click.Option(["--against"], metavar="FILE", type=click.Path(),
                     help="a gradient computed elsewhere, compared with lossjit's"),
        click.Option(["--json", "as_json"], is_flag=True,
                     help="print one JSON object per comparison"),
    ]

    def callback(predictions: str, targets: str | None, reduction: str,
                 sample_weight: str | None, empty: str, header: bool | None,
                 classes: str | None, samples: int | None, seed: int, tol: float,
                 against: str | None, as_json: bool, **given: Any) -> None:
        _import_compute_modules()
        from lossjit.gradcheck import check_grad
        from lossjit.jobs import json_safe, read_inputs
        from lossjit.readers import Reader

        with _user_errors():
            job = _job(spec, predictions, targets, reduction, sample_weight, empty, header,
                       classes, given)
            reader = Reader(header=header)
            inputs = read_inputs(spec, job, reader)
            theirs = None if against is None else reader.read(against, what="--against").array
            with _warnings_on_stderr():
                result = check_grad(spec.name, inputs.x, inputs.y, reduction=reduction,
                                    sample_weight=inputs.sample_weight, empty=empty,
                                    samples=samples, seed=seed, against=theirs,
                                    nan_policy=job.nan_policy, **inputs.options)
        if as_json:
            for check in (result, result.hessian):
                if check is not None:
                    fields = {k: json_safe(v) for k, v in vars(check).items()
                              if k != "hessian"}
                    click.echo(json.dumps({**fields, "position": list(check.position),
                                           "ok": check.ok(tol), "tol": tol}))
        else:
            click.echo("\n".join(_check_report(result, against)))
        if not result.ok(tol):
            _say(f"above the tolerance {tol:g}")
            sys.exit(1)

    return OneJob(
        spec.name, params=params, callback=callback,
        help_text=lambda: _inputs_help(spec) + " Prints the worst error of the gradient (and "
        "the Hessian's diagonal) against central finite differences, or against --against "
        f"FILE; exits 1 above --tol.\n\n\b\nExamples:\n  {_example(spec, 'check')} --samples "
        f"100\n  {_example(spec, 'check')} --against my_grad.npy",
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
                f"unknown loss {name!r}; "
                f"{registry.suggest(name.strip().lower().replace('-', '_'))}", ctx)
        return super().resolve_command(ctx, args)


def _debugging() -> bool:
    """Whether tracebacks are shown: ``--debug`` or ``LOSSJIT_DEBUG=1``."""
    return os.environ.get("LOSSJIT_DEBUG", "") not in ("", "0")


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["LOSSJIT_DEBUG"] = "1"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lossjit", message="lossjit %(version)s")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
              help="show the traceback of an error (also LOSSJIT_DEBUG=1)")
def cli() -> None:
    """Loss functions and their exact gradients, as fused Numba kernels.

    \b
    lossjit compute mse preds.npy targets.npy      loss on stdout, gradient to preds.grad.npy
    lossjit compute mse results.csv:pred results.csv:label --grad-out -
    lossjit compute focal logits.npy labels.npy --gamma 1.5 --json
    lossjit check huber preds.npy targets.npy      gradient against finite differences
    lossjit batch jobs.ndjson                      many jobs, one process
    lossjit plot mse huber -o losses.png           curves of losses and their derivatives
    lossjit list                                   every loss
    lossjit info cross_entropy                     one loss: formula, inputs, options

    \b
    Shell completion (bash; zsh and fish alike, with zsh_source or fish_source):
      eval "$(_LOSSJIT_COMPLETE=bash_source lossjit)"
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

    \b
    Examples:
      lossjit compute mse preds.npy targets.npy
      lossjit compute bce_with_logits results.csv.gz:score results.csv.gz:clicked --json
      zcat logits.npy.gz | lossjit compute cross_entropy - labels.txt --no-grad
    """


@cli.group(cls=CheckGroup)
def check() -> None:
    """Check the gradient of LOSS on PREDICTIONS and TARGETS against finite differences (or
    against a gradient computed elsewhere, --against FILE).

    Run `lossjit check LOSS --help` for a loss's options.

    \b
    Examples:
      lossjit check focal logits.npy labels.npy --gamma 1.5 --samples 100
      lossjit check mse preds.npy targets.npy --against torch_grad.npy
    """


@cli.command()
@click.argument("jobs", default="-", type=click.Path(allow_dash=True))
@click.option("--jobs", "workers", type=click.IntRange(1), default=1, show_default=True,
              metavar="N", help="run N jobs at a time (results stay in order)")
def batch(jobs: str, workers: int) -> None:
    """Run every job of JOBS (a file, or - for stdin) in one process; print one NDJSON result
    per job, in order. Exit 1 when any job failed.

    JOBS is NDJSON (one object per line) or CSV (a header, one job per row) with the fields
    loss, predictions, targets, reduction, the loss's options, sample_weight, empty, header,
    classes, and the outputs grad_out, hess_out, loss_out, <option>_grad_out (a batch job
    writes only the outputs it names).

    \b
    Example:
      ls runs/*.npz | sed 's/.*/{"loss": "mse", "predictions": "&"}/' | lossjit batch
      lossjit batch jobs.csv --jobs 2 > results.ndjson
    """
    use_cache_dir()
    from lossjit.batch import parse_jobs, run_jobs

    try:
        if jobs == "-":
            stream = click.get_binary_stream("stdin")
            if stream.isatty():
                raise LossjitError("JOBS: stdin is a terminal; pipe the job list in or give "
                                   "a file")
            text = stream.read().decode("utf-8-sig")
        else:
            with open(jobs, encoding="utf-8-sig") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"JOBS: {jobs!r}: cannot read: "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None
    except LossjitError as exc:
        raise click.ClickException(str(exc)) from None
    failed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *_: _say(f"warning: {message}")
        for result in run_jobs(parse_jobs(text), workers=workers):
            failed += not result["ok"]
            click.echo(json.dumps(result))
    if failed:
        _say(f"{failed} job{'s' if failed > 1 else ''} failed")
        sys.exit(1)


@cli.command()
@click.argument("losses", nargs=-1, required=True, metavar="LOSS...")
@click.option("-o", "--output", required=True, type=click.Path(), metavar="FILE",
              help="the figure: .png, .svg or .pdf")
@click.option("--range", "bounds", type=(float, float), default=None, metavar="A B",
              help="the predictions drawn [default: chosen for each loss]")
@click.option("--target", type=float, default=None,
              help="the fixed target [default: a typical one for each loss]")
@click.option("--points", type=click.IntRange(3), default=401, show_default=True)
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="a loss option, for every loss that has it (repeatable)")
def plot(losses: tuple[str, ...], output: str, bounds: tuple[float, float] | None,
         target: float | None, points: int, settings: tuple[str, ...]) -> None:
    """Draw each LOSS, its gradient and (where it has one) its Hessian's diagonal over a
    range of predictions for a fixed target (classification losses: over the probability of
    the true class). Needs the plot extra: pip install 'lossjit[plot]'.

    \b
    Example:
      lossjit plot mse l1 huber log_cosh --range -3 3 -o losses.png
      lossjit plot cross_entropy focal --set gamma=2 -o classes.png
    """
    use_cache_dir()
    options: dict[str, float] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        try:
            options[name.strip().replace("-", "_")] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected NAME=NUMBER", param_hint="--set"
                                     ) from None
        if not sep:
            raise click.BadParameter(f"{item!r}: expected NAME=NUMBER", param_hint="--set")
    from lossjit.plotting import plot as draw

    lo, hi = bounds if bounds else (None, None)
    with _user_errors():
        names = [registry.resolve(name).name for name in losses]
        draw(names, output, lo=lo, hi=hi, target=target, points=points, options=options)
    _say(f"figure written to {output}")


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
    then, indented, its inputs, options with defaults and reference.

    \b
    Example:
      lossjit list --json | jq -r '.[].name'
    """
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
    """Describe LOSS: formula, gradient, inputs, options with defaults, reference.

    \b
    Example:
      lossjit info focal
    """
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
        ("streaming", "in pieces along axis 0 (compute --stream, lossjit.streaming); not a "
                      "call without a batch axis (one class vector, pair or triplet)"),
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
    installed, PyTorch and JAX: median milliseconds, and how many times faster lossjit is.

    \b
    Example:
      lossjit bench mse cross_entropy --size 100000 --dtype float64
    """
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
    """The compiled-kernel cache: where it is, clearing it, compiling ahead of use.

    \b
    Example:
      lossjit cache warm mse cross_entropy --dtype float32
    """


@cache.command("path")
def cache_path() -> None:
    """Print the cache directory (NUMBA_CACHE_DIR, or a per-user, per-version directory).

    \b
    Example:
      du -sh "$(lossjit cache path)"
    """
    from lossjit.cache import cache_dir, preferred_cache_dir, usage

    path = cache_dir()
    files, size = usage(path)
    click.echo(path)
    if path != preferred_cache_dir():
        _say(f"warning: {preferred_cache_dir()} cannot be used; kernels go to {path}")
    _say(f"{files} kernel files, {size / 1e6:.1f} MB")


@cache.command("clear")
def cache_clear() -> None:
    """Remove lossjit's compiled kernels (and nothing else) from the cache directory.

    \b
    Example:
      lossjit cache clear
    """
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
    and before fanning out many processes.

    \b
    Example:
      lossjit cache warm --jobs 2
    """
    use_cache_dir()
    from lossjit.cache import cache_dir, warm

    with _user_errors(), _warnings_on_stderr():
        names = [registry.resolve(name).name for name in losses] or None
        done = warm(names, dtypes=dtypes or ("float32", "float64"), parallel=not no_parallel,
                    jobs=jobs or os.cpu_count() or 1,
                    progress=lambda w: _say(f"{w.name}: {w.compiled} compiled, {w.loaded} "
                                            f"loaded, {w.seconds:.1f} s"))
    _say(f"warmed {len(done)} losses into {cache_dir()}")


def _handle_signals() -> None:
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) in (signal.SIG_DFL,
                                                                signal.default_int_handler):
            signal.signal(number, interrupt)


def _remove_temporaries() -> None:
    writers = sys.modules.get("lossjit.writers")
    if writers is not None:
        writers.remove_temporaries()


def main() -> None:
    """Entry point of the ``lossjit`` script: no traceback reaches the user (unless
    ``--debug``); an interrupted run leaves no temporary file and exits 128 + the signal."""
    _handle_signals()
    try:
        cli.main(prog_name="lossjit", standalone_mode=True)
    except Interrupted as stop:
        _remove_temporaries()
        import signal

        _say(f"interrupted ({signal.Signals(stop.signum).name}); no output was written")
        sys.exit(128 + stop.signum)
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head -1`): exit quietly, as Unix tools do.
        _remove_temporaries()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except MemoryError:
        _remove_temporaries()
        if _debugging():
            traceback.print_exc()
        _say("out of memory")
        sys.exit(1)
    except Exception as exc:  # an internal error: one line, never a traceback
        _remove_temporaries()
        if _debugging():
            traceback.print_exc()
        _say(f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
             + " (run with --debug for the traceback)")
        sys.exit(1)
