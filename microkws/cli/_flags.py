"""Helpers for declaring flags in both spellings.

The original speech_commands scripts use `--wanted_words`; modern tools use
`--wanted-words`. Every flag is accepted both ways so the tutorial's commands
run unchanged.
"""

import argparse
import os


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


def add_data_arguments(parser):
    """The original train.py's data flags, shared by every command that reads a data folder."""
    from microkws.dataset.index import DEFAULT_WANTED_WORDS

    group = parser.add_argument_group("data")
    add_flag(group, "--data_dir", metavar="DIR",
             help="folder in Speech Commands layout (<word>/<clip>.wav, _background_noise_/); default: where "
                  "`microkws download` puts Speech Commands v0.02")
    add_flag(group, "--wanted_words", type=comma_list, default=DEFAULT_WANTED_WORDS, metavar="W1,W2",
             help="words to recognise, comma-separated (default: %(default)s)")
    add_flag(group, "--silence_percentage", type=float, default=10.0, metavar="PCT",
             help="silence examples as a percentage of the wanted-word clips (default: %(default)s)")
    add_flag(group, "--unknown_percentage", type=float, default=10.0, metavar="PCT",
             help="unknown-word examples as a percentage of the wanted-word clips (default: %(default)s)")
    add_flag(group, "--validation_percentage", type=float, default=10.0, metavar="PCT",
             help="share of speakers for validation with the file-name split (default: %(default)s)")
    add_flag(group, "--testing_percentage", type=float, default=10.0, metavar="PCT",
             help="share of speakers for testing with the file-name split (default: %(default)s)")
    add_flag(group, "--split", choices=("auto", "lists", "hash"), default="auto",
             help="partitions from the folder's validation_list.txt/testing_list.txt (lists), the original "
                  "SHA-1 file-name split (hash), or lists when present (auto, the default)")
    add_flag(group, "--strict", action="store_true",
             help="fail on an unreadable audio file instead of skipping it")
    return group


def data_config_from_args(args):
    from microkws.dataset.index import DataConfig

    data_dir = args.data_dir
    if data_dir is None:
        from microkws.download import DEFAULT_VERSION, SPEECH_COMMANDS, default_data_root

        data_dir = os.path.join(default_data_root(), SPEECH_COMMANDS[DEFAULT_VERSION].folder)
    return DataConfig(
        data_dir=data_dir,
        wanted_words=args.wanted_words,
        silence_percentage=args.silence_percentage,
        unknown_percentage=args.unknown_percentage,
        validation_percentage=args.validation_percentage,
        testing_percentage=args.testing_percentage,
        split=args.split,
        strict=args.strict,
    )
