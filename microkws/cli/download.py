"""Download and extract the Speech Commands data set.

Prints the data-set folder, ready to pass as --data_dir. An interrupted
download resumes when the command is run again, and a folder that is already
there is not downloaded again. The default destination is a per-user cache
folder, or $MICROKWS_DATA_DIR when set.
"""

from microkws.cli._flags import add_flag
from microkws.download import DEFAULT_VERSION, SPEECH_COMMANDS, download_speech_commands


def add_arguments(parser):
    parser.add_argument(
        "--version",
        choices=tuple(SPEECH_COMMANDS),
        default=DEFAULT_VERSION,
        help="data-set version; v0.02-test is v0.02's separate test set (default: %(default)s)",
    )
    parser.add_argument(
        "--dest",
        metavar="DIR",
        help="folder to download into; the data set lands in a folder inside it, DIR/speech_commands_v0.02/ "
        "for v0.02 (default: $MICROKWS_DATA_DIR, else the user cache folder)",
    )
    add_flag(
        parser,
        "--url",
        "--data_url",
        "--data-url",
        metavar="URL",
        help="download from this mirror instead; it must serve the same archive, whose checksum is checked",
    )
    add_flag(parser, "--keep_archive", action="store_true", help="keep the .tar.gz after unpacking it")


def run(args):
    folder = download_speech_commands(args.version, dest=args.dest, url=args.url, keep_archive=args.keep_archive)
    print(folder)
