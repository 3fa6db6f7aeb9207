"""Helpers for declaring flags in both spellings.

The original speech_commands scripts use `--wanted_words`; modern tools use
`--wanted-words`. Every flag is accepted both ways so the tutorial's commands
run unchanged.
"""

import argparse


def add_flag(parser, name, *aliases, **kwargs):
    """Add `--name` with its underscore and dash spellings, plus extra aliases."""
    bare = name.lstrip("-")
    spellings = [f"--{bare.replace('_', '-')}", f"--{bare.replace('-', '_')}"]
    spellings += [a for a in aliases]
    unique = list(dict.fromkeys(spellings))
    kwargs.setdefault("dest", bare.replace("-", "_"))
    return parser.add_argument(*unique, **kwargs)


def str_to_bool(text):
    """Parse 0/1/true/false/yes/no as their meaning (the original took "0" as true)."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1/true/false, got {text!r}")


def comma_list(text):
    """Parse "up,down" into ("up", "down"), ignoring blanks."""
    return tuple(item.strip() for item in str(text).split(",") if item.strip())
