"""The registry: the mechanism that holds every loss's declaration and finds it by name.

A :class:`LossSpec` is one loss, declared once: its name, aliases, options, formula, its
layout object (:mod:`lossjit.layouts`) and its kernel set (:mod:`lossjit.kernels`). The API,
the CLI (its options and ``lossjit list``/``info``), the README's table of losses, cache
warm-up, the benchmark and the parametrised tests all read the specs. The built-in losses are
data beside this module, in :mod:`lossjit.catalogue`. Nothing here imports Numba or NumPy:
listing losses stays quick.

>>> from lossjit.registry import resolve
>>> spec = resolve("mae")
>>> spec.name, [p.name for p in spec.params]
('l1', [])
>>> [p.name for p in resolve("huber").params]
['delta']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

from lossjit.errors import LossjitError, UnknownLossError

if TYPE_CHECKING:
    from lossjit.kernels._blocks import KernelSet
    from lossjit.layouts import Layout

#: A reduction: "mean" is the default; "batchmean" is kl_div's own.
Reduction = Literal["mean", "sum", "none", "batchmean"]

#: What a mean over zero terms gives: NaN (PyTorch's), 0, or an error.
Empty = Literal["nan", "zero", "error"]

#: The reductions every loss accepts ("mean" is the default).
REDUCTIONS: tuple[str, ...] = get_args(Reduction)[:3]

#: The choices of ``empty``.
EMPTY_CHOICES: tuple[str, ...] = get_args(Empty)

#: Kinds of option: how it is typed, parsed on the command line and checked.
PARAM_KINDS = ("float", "int", "bool", "array", "float_or_array")

#: Keywords of every loss, which no loss option may take as its name.
COMMON_OPTIONS = ("reduction", "sample_weight", "empty", "nan_policy", "wrt", "out")


@dataclass(frozen=True)
class Param:
    """One option of a loss.

    ``kind`` is one of ``PARAM_KINDS``; ``expect`` says in words what values are valid and
    ``check`` tests a scalar value (arrays are checked where they are laid out). A
    ``required`` option has no default; a ``differentiable`` one can be named in ``wrt=`` to
    get the loss's gradient with respect to it; an array that ``broadcasts`` against the
    predictions is cut with them when a call is cut into pieces.
    """

    name: str
    kind: str
    default: Any
    help: str
    expect: str = ""
    check: Callable[[Any], bool] | None = None
    differentiable: bool = False
    required: bool = False
    broadcasts: bool = False

    def validate(self, loss: str, value: Any) -> Any:
        """Return ``value`` converted to this option's kind, or raise a clear LossjitError."""
        if value is None and self.required:
            raise LossjitError(f"{self.name}: missing; {loss} needs it ({self.help})")
        if value is None and self.kind in ("array", "float_or_array"):
            return None
        try:
            if self.kind == "bool":
                if not isinstance(value, (bool, int)) or value not in (0, 1):
                    raise TypeError
                value = bool(value)
            elif self.kind == "int":
                if isinstance(value, bool) or int(value) != value:
                    raise TypeError
                value = int(value)
            elif self.kind == "float" or (self.kind == "float_or_array" and _is_scalar(value)):
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
        except (TypeError, ValueError):
            raise LossjitError(
                f"{loss}: option {self.name} must be {_KIND_WORDS[self.kind]}, got "
                f"{_plain(value)}") from None
        if self.kind == "int" and not -2**63 <= value < 2**63:
            raise LossjitError(f"{loss}: option {self.name} must fit in 64 bits (a signed "
                               f"integer), got {value}")
        if self.check is not None and _is_scalar(value) and not self.check(value):
            raise LossjitError(f"{loss}: option {self.name} must be {self.expect}, got "
                               f"{_plain(value)}")
        return value


_KIND_WORDS = {
    "float": "a number",
    "int": "an integer",
    "bool": "true or false",
    "array": "an array",
    "float_or_array": "a number or an array",
}


def _plain(value: Any) -> str:
    """A value for a message: NumPy scalars as plain numbers (``-1.0``, not
    ``np.float64(-1.0)``)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    return repr(value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) or (
        hasattr(value, "ndim") and value.ndim == 0
    )


class _OnFirstUse:
    """A field of a frozen dataclass given either its value or a function of no arguments that
    builds it, called when the field is first read (and the value kept): the catalogue gives
    its layouts so, so that declaring the losses imports neither the layouts nor NumPy."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_{name}_given"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:  # asked by @dataclass for a default: there is none
            raise AttributeError(self.name)
        value = obj.__dict__[self.slot]
        if isinstance(value, _Later):
            value = value.build()
            obj.__dict__[self.slot] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        if callable(value) and not hasattr(value, "lay_out"):  # a builder, not a layout
            value = _Later(value)
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class _Later:
    build: Callable[[], Any]


@dataclass(frozen=True)
class LossSpec:
    """Everything lossjit knows about one loss.

    - ``layout``: the layout object that checks, lays out, exemplifies and cuts its inputs
      (or a function of no arguments that returns it, called on first use: the catalogue's
      way, so that listing losses imports no NumPy);
    - ``kernels``: returns its :class:`~lossjit.kernels._blocks.KernelSet`, or a dict of them
      by the variant the layout chooses (called on first use: it imports the kernel module);
    - ``inputs``: what ``predictions`` and ``targets`` look like, in words;
    - ``targets``: ``"required"``, ``"optional"`` or ``"none"`` (targets are ignored);
    - ``reductions``: the reductions it accepts;
    - ``hessian``: the diagonal of its Hessian w.r.t. the predictions, in words (empty when
      ``grad_hess`` cannot compute it; whether a kernel set can is its ``hessian`` flag);
    - ``nonnegative``: every loss term is >= 0 on valid inputs.
    """

    name: str
    family: str
    formula: str
    inputs: str
    params: tuple[Param, ...]
    layout: Layout = _OnFirstUse()  # type: ignore[assignment]
    kernels: Callable[[], KernelSet | dict[str, KernelSet]]
    aliases: tuple[str, ...] = ()
    targets: str = "required"
    reference: str = ""
    gradient: str = ""
    notes: str = ""
    reductions: tuple[str, ...] = REDUCTIONS
    hessian: str = ""
    nonnegative: bool = True

    def options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The full option dict: defaults, overridden by ``given`` (validated)."""
        unknown = sorted(set(given) - {p.name for p in self.params})
        if unknown:
            known = ", ".join(p.name for p in self.params) or "none"
            raise LossjitError(
                f"{self.name}: unknown option {unknown[0]!r} (its options: {known})"
            )
        return {p.name: p.validate(self.name, given.get(p.name, p.default)) for p in self.params}

    @cached_property
    def _loaded_kernels(self) -> KernelSet | dict[str, KernelSet]:
        return self.kernels()

    def kernel_set(self, variant: str | None = None) -> KernelSet:
        """The kernel set of the ``variant`` the layout chose (loaded on first use)."""
        sets = self._loaded_kernels
        return sets[variant] if isinstance(sets, dict) else sets  # type: ignore[index]

    def kernel_sets(self) -> list[KernelSet]:
        """Every kernel set of the loss, one per variant."""
        sets = self._loaded_kernels
        return list(sets.values()) if isinstance(sets, dict) else [sets]


_specs: dict[str, LossSpec] = {}
_aliases: dict[str, str] = {}

#: How many times a spec was registered: what a cache of resolved specs checks.
generation = 0


def register_spec(spec: LossSpec, *, replace: bool = False) -> LossSpec:
    """Add ``spec`` to the registry (its name and aliases must be new unless ``replace``)."""
    for key in (spec.name, *spec.aliases):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise LossjitError(f"register: {key!r} is not a valid loss name; use lowercase "
                               "letters, digits and underscores, starting with a letter")
    for key in (spec.name, *spec.aliases):
        owner = _aliases.get(key)
        if owner is not None and not (replace and owner == spec.name):
            raise LossjitError(f"register: the name {key!r} is taken by the loss {owner!r}")
    for p in spec.params:
        if p.name in COMMON_OPTIONS:
            raise LossjitError(f"register: option name {p.name!r} is reserved (every loss has "
                               f"it); reserved: {', '.join(COMMON_OPTIONS)}")
        if p.kind not in PARAM_KINDS:
            raise LossjitError(
                f"register: option {p.name} has kind {p.kind!r}; expected one of "
                + ", ".join(PARAM_KINDS)
            )
    if spec.targets not in ("required", "optional", "none"):
        raise LossjitError(
            f"register: targets must be 'required', 'optional' or 'none', got {spec.targets!r}"
        )
    global generation
    _specs[spec.name] = spec
    for key in (spec.name, *spec.aliases):
        _aliases[key] = spec.name
    generation += 1
    return spec


def resolve(name: str) -> LossSpec:
    """The spec of a loss, by its name or an alias (case and '-' vs '_' do not matter)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in _aliases:
        raise UnknownLossError(f"unknown loss {name!r}; {suggest(key)}")
    return _specs[_aliases[key]]


def suggest(key: str) -> str:
    """The closest names and aliases to an unknown one, as a hint.

    >>> suggest("crossentropy")
    "did you mean 'cross_entropy' or 'binary_cross_entropy'? (lossjit list shows every loss)"
    """
    import difflib

    close = difflib.get_close_matches(key, list(_aliases), n=3, cutoff=0.6)
    if not close:
        return "lossjit list shows every loss"
    shown = [repr(c) for c in dict.fromkeys(close)]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"did you mean {listed}? (lossjit list shows every loss)"


def names() -> list[str]:
    """Canonical names of all registered losses, in registration order."""
    return list(_specs)


from lossjit.catalogue import BUILTIN  # noqa: E402  (the catalogue needs the classes above)

for _spec in BUILTIN:
    register_spec(_spec)
