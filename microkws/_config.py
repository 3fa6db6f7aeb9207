"""What every settings dataclass shares: loading from a dict that may come from a hand-edited file."""

from dataclasses import fields

from microkws.errors import UserError


def reject_unknown_keys(cls, data, *, source, kind):
    """Raise a UserError naming `source` if `data` has keys that are not fields of `cls`."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise UserError(f"{source}: unknown {kind} setting(s) {', '.join(unknown)}")
