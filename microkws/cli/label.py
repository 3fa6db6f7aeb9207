"""The top labels of audio files (the original label_wav).

  microkws label MODEL WAV_OR_DIR... [--how_many_labels 3]

Each file is read as training reads a clip (resampled to the model's rate, channels averaged, padded
to one clip, or the loudest second of a longer recording); a folder means every audio file in it,
recursively. MODEL is loaded as by `microkws evaluate`.
"""

from microkws.cli._flags import add_flag, add_model_arguments, model_from_args, number


def add_arguments(parser):
    add_model_arguments(parser)
    parser.add_argument("paths", nargs="+", metavar="WAV_OR_DIR", help="audio files or folders of them")
    add_flag(parser, "--how_many_labels", type=number(1, 1000, whole=True), default=3, metavar="K",
             help="labels to print per file, best first (default: %(default)s)")


def run(args):
    from microkws.evaluate import label_files

    model = model_from_args(args)
    results = label_files(model, args.paths, how_many_labels=args.how_many_labels)
    for path, best in results:
        print(path)
        for label, score in best:
            print(f"  {label} (score = {score:.5f})")
    return 0
