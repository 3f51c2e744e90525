"""Facts about each option, kept once in its config field's metadata.

A config field declared with :func:`opt` carries its valid range (numeric options),
whether a resumed run may change it, what a saved config *without* the key meant, and
when it has an effect at all (:class:`Only`). :func:`check_config` refuses out-of-range
values with the command line's one line, :func:`check_effects` options given where they
do nothing (or warns, for a documented habit), the
CLI builds its ``min``/``max`` from :func:`option_range` (retarget/cli.py),
:func:`resumable_options` gives what ``train --resume`` may change, and
:func:`absent_meant` what :func:`retarget.config.from_dict` fills in for missing keys.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any, Callable, Collection, Mapping, Optional

from retarget.errors import RetargetError

__all__ = [
    "OptionError",
    "Only",
    "Range",
    "absent_meant",
    "check_config",
    "check_effects",
    "flag_of",
    "opt",
    "option_range",
    "resumable_options",
]

# Keys of a field's metadata, set by opt(): its valid Range (numeric options), whether a
# resumed run may change it, what a saved config without the key meant, the conditions
# under which it has an effect (Only), and its command-line flag where that is not --name.
_RANGE, _RESUMABLE, _ABSENT, _ONLY, _FLAG = "range", "resumable", "absent", "only", "flag"


class OptionError(RetargetError, ValueError):
    """An option outside its valid range: a ``RetargetError`` to library callers, a ``ValueError`` the CLI
    turns into a usage error (exit 2)."""


@dataclass(frozen=True)
class Range:
    """Valid values of a numeric option: ``low`` to ``high`` (None = unbounded), each end included unless open."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    @property
    def closed(self) -> bool:
        """Whether both ends are included, as a CLI's ``min``/``max`` can say."""
        return not (self.low_open or self.high_open)

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def text(self) -> str:
        """E.g. ``at least 0 and below 1``."""
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return " and ".join(parts) or "finite"


@dataclass(frozen=True)
class Only:
    """An option has an effect only when another option, ``on``, allows it.

    ``on`` is the deciding option's field, dotted from the command's config
    (``"format"``, ``"model.model"``) or a name the command resolves itself and passes
    to :func:`check_effects` (render's ``"align"``, decided by the run's data). The option
    has an effect when the decider's value is one of ``values``, or, with ``test``, when
    ``test(own value, decider's value)`` is true. ``warn``: given where it does nothing,
    say so once and go on instead of refusing (an option whose documented habit it is
    to be overridden, like ``--direction`` under ``--to``).
    """

    on: str  # the deciding option's field ("format", "model.model") or a resolved name ("align")
    values: tuple[Any, ...] = ()  # decider values under which the option acts (with no test)
    test: Optional[Callable[[Any, Any], bool]] = None  # (own value, decider value) -> acts; replaces values
    why: str = ""  # the refusal's reason when not "applies with --on VALUE only"
    warn: bool = False  # warn once instead of refusing

    def acts(self, own: Any, decider: Any) -> bool:
        """Whether the option, at ``own``, has an effect when the decider is ``decider``."""
        return self.test(own, decider) if self.test is not None else decider in self.values


def opt(
    default: Any = MISSING,
    *,
    min: Optional[float] = None,
    max: Optional[float] = None,
    min_open: bool = False,
    max_open: bool = False,
    resumable: bool = False,
    absent: Any = MISSING,
    only: tuple[Only, ...] | Only = (),
    flag: Optional[str] = None,
    default_factory: Any = MISSING,
) -> Any:
    """A config field with its facts in the metadata (read by :func:`check_config`, the CLI and resume).

    Args:
        default: the value when the option is not given.
        min, max: the valid range of a numeric option (None = unbounded); ``min_open`` /
            ``max_open`` exclude the end itself (``lr`` above 0, ``beta1`` below 1).
        resumable: a resumed run may change it (run length and run control only).
        absent: the value a saved config *without* the key meant, when that differs from
            ``default`` (the field was added later with a new default; see :func:`from_dict`).
        only: the conditions under which the option has an effect (:class:`Only`), checked
            by :func:`check_effects` whenever the option is given.
        flag: the command-line flag where it is not ``--field-name`` (``--to`` for ``to_domain``).
        default_factory: as :func:`dataclasses.field`'s, for a nested config.
    """
    meta: dict[str, Any] = {}
    if min is not None or max is not None:
        meta[_RANGE] = Range(min, max, min_open, max_open)
    if resumable:
        meta[_RESUMABLE] = True
    if absent is not MISSING:
        meta[_ABSENT] = absent
    if only:
        meta[_ONLY] = (only,) if isinstance(only, Only) else tuple(only)
    if flag is not None:
        meta[_FLAG] = flag
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def option_range(cls: type, name: str) -> Optional[Range]:
    """The valid :class:`Range` of numeric option ``name`` of config ``cls``; None for other options."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get(_RANGE)


def resumable_options(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` a resumed run may change (``opt(resumable=True)``), in field order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(_RESUMABLE))


def check_config(cfg: Any) -> None:
    """Raise :class:`OptionError` naming the first numeric option of ``cfg`` outside its range.

    Options of ``cfg`` itself come first, then those of its nested configs (``model``,
    ``loss``, ``face``); None (unset) passes. The message is the command line's, e.g.
    ``--crf 60: must be at least 0 and at most 51``. The library entry points (extract,
    train, render, evaluate, demo) call it, so library callers are refused what the CLI
    refuses.
    """
    nested = []
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            nested.append(value)
        rng = f.metadata.get(_RANGE)
        if rng is not None and value is not None and isinstance(value, (int, float)) and value not in rng:
            raise OptionError(f"{flag_of(f)} {value:g}: must be {rng.text()}")
        if isinstance(value, str) and not value.strip() and _optional_text(hints.get(f.name)):
            raise OptionError(f"{flag_of(f)} {value!r}: empty; give a value or leave the option out")
        choices = _choices(hints.get(f.name))
        if choices and value not in choices:
            raise OptionError(
                f"{flag_of(f)} {value}: choose one of {', '.join(str(c) for c in choices if c is not None)}"
            )
    for sub in nested:
        check_config(sub)


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of config class ``cls`` (its module's names in scope)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that does not resolve: no choices checked
        return {}


def _optional_text(hint: Any) -> bool:
    """Whether ``hint`` is ``Optional[str]``: an option that names something (a path, a domain) or is left out."""
    args = typing.get_args(hint)
    return typing.get_origin(hint) in (typing.Union, getattr(types, "UnionType", None)) and set(args) == {
        str,
        type(None),
    }


def _choices(hint: Any) -> tuple[Any, ...]:
    """The values of a ``Literal`` annotation (with None for ``Optional[Literal]``); () for other types."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, getattr(types, "UnionType", None)):
        args = typing.get_args(hint)
        literal = [a for a in args if typing.get_origin(a) is typing.Literal]
        if literal and all(a is type(None) or a in literal for a in args):
            return tuple(v for a in literal for v in typing.get_args(a)) + ((None,) if type(None) in args else ())
    return ()


def absent_meant(cls: type) -> dict[str, Any]:
    """``{field: value}`` of the fields of ``cls`` declared with ``opt(absent=...)``."""
    return {f.name: f.metadata[_ABSENT] for f in dataclasses.fields(cls) if _ABSENT in f.metadata}


def flag_of(f: dataclasses.Field) -> str:  # type: ignore[type-arg]
    """The command-line flag of config field ``f``: ``--to`` for ``to_domain``, else ``--field-name``."""
    return f.metadata.get(_FLAG) or f"--{f.name.replace('_', '-')}"


def _default(f: dataclasses.Field) -> Any:  # type: ignore[type-arg]
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def _shown(value: Any) -> str:
    """An option's value as typed on a command line."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return f" {value:g}"
    if isinstance(value, (tuple, list)):
        return " " + ",".join(str(v) for v in value)
    return "" if dataclasses.is_dataclass(value) else f" {value}"


def _lookup(root: Any, context: Mapping[str, Any], path: str) -> tuple[Any, str]:
    """The decider's value (``context`` first, then the dotted field of ``root``) and its flag."""
    parts = path.split(".")
    obj, f = root, None
    for part in parts:
        f = {g.name: g for g in dataclasses.fields(obj)}.get(part) if dataclasses.is_dataclass(obj) else None
        obj = getattr(obj, part, None)
    flag = flag_of(f) if f is not None else f"--{parts[-1].replace('_', '-')}"
    return (context[path] if path in context else obj), flag


def _refusal(f: dataclasses.Field, own: Any, rule: Only, decider: Any, flag: str) -> str:  # type: ignore[type-arg]
    """The one line for option ``f`` given where ``rule`` says it does nothing."""
    name = f"{flag_of(f)}{_shown(own)}"
    if rule.why:
        return f"{name}: {rule.why.format(decider=decider)}"
    if rule.values == (True,):  # a switch
        return f"{name}: has an effect with {flag} only"
    want = " or ".join(f"{flag} {v}" if v is not None else f"no {flag}" for v in rule.values)
    now = f"no {flag}" if decider is None else f"{flag}{_shown(decider)}"
    return f"{name}: has an effect with {want} only (this is {now})"


def check_effects(
    cfg: Any,
    context: Optional[Mapping[str, Any]] = None,
    given: Optional[Collection[str]] = None,
    warn: Optional[Callable[[str], None]] = None,
    *,
    deciders: Optional[Collection[str]] = None,
    _root: Any = None,
    _prefix: str = "",
) -> list[str]:
    """Refuse (or warn once about) options of ``cfg`` given where they have no effect.

    One rule for every command, read from the fields' :class:`Only` metadata: an option
    counts as given when its value differs from its default (or, with ``given``, when its
    dotted field name is in it, as the CLI knows from the command line). Its deciders are
    read from ``context`` (values a command resolved itself, e.g. render's ``align``
    from the run's data) or else from ``cfg``. Nested configs are checked too, their
    deciders read from the top-level config.

    ``deciders``: check only the rules decided by these fields (dotted names), e.g. those a
    command can judge before it has resolved the rest; None checks every rule.

    Returns:
        the warnings given (each also passed to ``warn``).

    Raises:
        OptionError: the first option given where it does nothing, in one line naming the
            option that decides it, e.g. ``--quality 80: has an effect with --format jpg
            only (this is --format png)``.
    """
    root = cfg if _root is None else _root
    context = context or {}
    warned: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        path = _prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            warned += check_effects(value, context, given, warn, deciders=deciders, _root=root, _prefix=path + ".")
        rules = f.metadata.get(_ONLY, ())
        default = _default(f)
        is_given = path in given if given is not None else (default is MISSING or value != default)
        if not rules or not is_given or (value is None and default is None):
            continue
        for rule in rules:
            if deciders is not None and rule.on not in deciders:
                continue
            decider, flag = _lookup(root, context, rule.on)
            if rule.acts(value, decider):
                continue
            line = _refusal(f, value, rule, decider, flag)
            if not rule.warn:
                raise OptionError(line)
            warned.append(line)
            if warn is not None:
                warn(line)
    return warned
