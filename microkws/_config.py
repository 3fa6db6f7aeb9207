"""What every settings dataclass shares: building one from a dict that may come from a hand-edited file.

A run's config.json is read back by every later command, and users edit it. Each value is checked
against its field's type here, once, so a wrong type ("sample_rate": "16000"), a list where an
object belongs, null or an unknown key is a one-line error naming the file and the key, not a
traceback deep in the pipeline.
"""

import math
import types
import typing
from dataclasses import fields

from microkws.errors import UserError


def changed_keys(saved, wanted, prefix=""):
    """Dotted names ("features.sample_rate") of the values that differ between two nested settings dicts,
    sorted: what a re-run with other settings is told it changed."""
    changed = []
    for key in sorted(set(saved) | set(wanted)):
        old, new = saved.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changed_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key}")
    return changed


def reject_unknown_keys(cls, data, *, source, kind):
    """Raise a UserError naming `source` if `data` has keys that are not fields of `cls`."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise UserError(f"{source}: unknown {kind} setting(s) {', '.join(unknown)}")


def settings_from_dict(cls, data, *, source, kind):
    """An instance of the settings dataclass `cls` from `data`, every key and type checked.

    Missing keys take the field's default. `source` names the file and `kind` the section in errors.
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: the {kind} settings must be an object of settings, got {_json_type(data)}")
    reject_unknown_keys(cls, data, source=source, kind=kind)
    hints = typing.get_type_hints(cls)
    values = {f.name: check_value(data[f.name], hints[f.name], f"{source}: {kind}.{f.name}")
              for f in fields(cls) if f.init and f.name in data}
    try:
        return cls(**values)
    except UserError as error:
        raise UserError(f"{source}: {error}") from None


def check_value(value, annotation, where):
    """`value` as the type `annotation` wants (lists become tuples), or a UserError starting with `where`."""
    if annotation is typing.Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return check_value(value, option, where)
            except UserError:
                pass
        raise UserError(f"{where} must be {_describe(annotation)}, got {_json_type(value)} {value!r}")
    if annotation is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {_json_type(value)} {value!r}")
        items = typing.get_args(annotation)
        if items and items[-1] is not Ellipsis:
            if len(items) != len(value):
                raise UserError(f"{where} must have {len(items)} entries, got {len(value)}")
            return tuple(check_value(v, t, where) for v, t in zip(value, items))
        if items:
            return tuple(check_value(v, items[0], where) for v in value)
        return tuple(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{where} must be a finite number, got {value!r}")
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise UserError(f"{where} must be {_describe(annotation)}, got {_json_type(value)} {value!r}")


def _describe(annotation):
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", type(None): "null",
             dict: "an object"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    return names.get(annotation, "a list" if annotation is tuple or typing.get_origin(annotation) is tuple
                     else getattr(annotation, "__name__", str(annotation)))


def _json_type(value):
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__)


def whole_number(value, name):
    """`value` as an int ("10", 10 and 10.0 are 10), or a UserError naming `name` (10.5, "x", NaN, True)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if isinstance(value, str) and not value.strip().lstrip("+-").isdigit() else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{name} must be a whole number, got {value!r}") from None


def finite_number(value, name):
    """`value` as a finite float, or a UserError naming `name` ("abc", NaN and infinity are refused)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    return number
