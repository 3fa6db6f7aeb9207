"""Show how a data folder splits into partitions and labels.

Prints the number of examples of each label in each partition, computed as
training would: wanted words, then silence and unknown examples sized as a
percentage of the wanted-word count. Also lists what was skipped.
"""

from microkws.cli._flags import add_data_arguments, add_json_argument, data_config_from_args, write_json_output
from microkws.dataset import PARTITIONS, index_dataset


def add_arguments(parser):
    add_data_arguments(parser)
    add_json_argument(parser, "the counts")


def run(args):
    index = index_dataset(data_config_from_args(args))
    counts = index.counts()
    if args.json:
        write_json_output(args.json, {"split": index.split_source, "labels": list(index.labels), "counts": counts})
        if args.json == "-":
            return 0
    print(format_counts(index.labels, counts))
    print(f"partitions from: {'list files' if index.split_source == 'lists' else 'SHA-1 file-name split'}")
    print(f"words found: {len(index.words_found)}; background recordings: {len(index.background_paths)}; "
          f"non-audio files skipped: {index.skipped_non_audio}; unreadable audio skipped: {len(index.unreadable)}")
    return 0


def format_counts(labels, counts):
    width = max(12, *(len(label) + 2 for label in labels))
    lines = ["partition".ljust(12) + "".join(label.rjust(width) for label in labels) + "total".rjust(8)]
    for partition in PARTITIONS:
        row = counts[partition]
        lines.append(
            partition.ljust(12) + "".join(str(row[label]).rjust(width) for label in labels)
            + str(sum(row.values())).rjust(8)
        )
    return "\n".join(lines)
