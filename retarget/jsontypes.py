"""Values read from JSON checked against a dataclass field's type hint (``retarget.config.from_dict``).

A config file may be hand-edited or damaged: ``"size": "abc"`` or a list where an
integer goes must be refused in one line naming the key, not crash later in the code
that trusts the type. :func:`typed` checks one value (and converts what JSON cannot
say: lists to tuples, an integral float to an ``int``); hints it does not know pass
the value through.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Callable, Literal

__all__ = ["field_hints", "shown", "typed"]

#: Builds a nested dataclass from a JSON object: ``(cls, value, "key.")``.
Nested = Callable[[type, Any, str], Any]

_HINTS: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass's fields (cached); {} when they cannot be resolved."""
    if cls not in _HINTS:
        try:
            _HINTS[cls] = typing.get_type_hints(cls)
        except Exception:  # noqa: BLE001 - an unresolvable hint is simply not checked
            _HINTS[cls] = {}
    return _HINTS[cls]


def shown(value: Any) -> str:
    """How an error message shows a JSON value: ``'abc'``, ``[1, 2]``, ``null`` (cut at 40 characters)."""
    text = "null" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def typed(hint: Any, value: Any, key: str, nested: Nested) -> Any:
    """``value`` checked against ``hint`` and converted (lists to tuples, integral floats to int).

    Args:
        hint: the field's resolved type (``int``, ``Optional[float]``, ``Literal[...]``,
            ``tuple[str, ...]``, a dataclass...).
        value: what JSON gave.
        key: the field's dotted name, for the message.
        nested: builds a dataclass hint's value from a JSON object.

    Raises:
        ValueError: ``"<key>: expected an integer, got 'abc'"`` and the like.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return typed(inner[0], value, key, nested) if len(inner) == 1 else value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ValueError(f"{key}: {shown(value)} is not one of {', '.join(str(a) for a in args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {shown(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(typed(args[0], v, key, nested) for v in value)
        if args and len(value) != len(args):
            raise ValueError(f"{key}: expected {len(args)} values, got {shown(value)}")
        return tuple(typed(a, v, key, nested) for a, v in zip(args, value)) if args else tuple(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return nested(hint, value, key + ".")
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against ``bool``, ``int``, ``float`` or ``str``; any other hint passes it (a list as a tuple)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {shown(value)}")
    if hint is int:
        if not number or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{key}: expected an integer, got {shown(value)}")
        return int(value)
    if hint is float:
        if not number:
            raise ValueError(f"{key}: expected a number, got {shown(value)}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {shown(value)}")
    if isinstance(value, list):
        return tuple(value)
    return value
