"""Facts about each option, kept once in its config field's metadata.

A config field declared with :func:`opt` carries its valid range (numeric options),
whether a resumed run may change it, and what a saved config *without* the key meant.
:func:`check_config` refuses out-of-range values with the command line's one line, the
CLI builds its ``min``/``max`` from :func:`option_range` (retarget/cli.py),
:func:`resumable_options` gives what ``train --resume`` may change, and
:func:`absent_meant` what :func:`retarget.config.from_dict` fills in for missing keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, dataclass, field
from typing import Any, Optional

from retarget.errors import RetargetError

__all__ = ["OptionError", "Range", "absent_meant", "check_config", "opt", "option_range", "resumable_options"]

# Keys of a field's metadata, set by opt(): its valid Range (numeric options), whether a
# resumed run may change it, and what a saved config without the key meant.
_RANGE, _RESUMABLE, _ABSENT = "range", "resumable", "absent"


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


def opt(
    default: Any = MISSING,
    *,
    min: Optional[float] = None,
    max: Optional[float] = None,
    min_open: bool = False,
    max_open: bool = False,
    resumable: bool = False,
    absent: Any = MISSING,
) -> Any:
    """A config field with its facts in the metadata (read by :func:`check_config`, the CLI and resume).

    Args:
        default: the value when the option is not given.
        min, max: the valid range of a numeric option (None = unbounded); ``min_open`` /
            ``max_open`` exclude the end itself (``lr`` above 0, ``beta1`` below 1).
        resumable: a resumed run may change it (run length and run control only).
        absent: the value a saved config *without* the key meant, when that differs from
            ``default`` (the field was added later with a new default; see :func:`from_dict`).
    """
    meta: dict[str, Any] = {}
    if min is not None or max is not None:
        meta[_RANGE] = Range(min, max, min_open, max_open)
    if resumable:
        meta[_RESUMABLE] = True
    if absent is not MISSING:
        meta[_ABSENT] = absent
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
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            nested.append(value)
        rng = f.metadata.get(_RANGE)
        if rng is not None and value is not None and value not in rng:
            raise OptionError(f"--{f.name.replace('_', '-')} {value:g}: must be {rng.text()}")
    for sub in nested:
        check_config(sub)


def absent_meant(cls: type) -> dict[str, Any]:
    """``{field: value}`` of the fields of ``cls`` declared with ``opt(absent=...)``."""
    return {f.name: f.metadata[_ABSENT] for f in dataclasses.fields(cls) if _ABSENT in f.metadata}
