"""Which partition a clip belongs to.

Two ways, as the Speech Commands data set defines them:
- `validation_list.txt` / `testing_list.txt` in the data folder (the v0.02
  archive ships them); everything not listed is training data.
- Otherwise the original's stable hash of the file name before `_nohash_`,
  so all clips of one speaker land in the same partition and stay there
  when more data is added.
"""

import hashlib
import os
import re

from microkws.errors import UserError

PARTITIONS = ("training", "validation", "testing")
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"

# The original hashes into 2**27 buckets; the constant is the largest bucket.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def which_set(filename, validation_percentage, testing_percentage):
    """Partition of `filename` under the original SHA-1 file-name split.

    Identical to TensorFlow's speech_commands `input_data.which_set`: the
    name up to `_nohash_` is hashed, so every clip of a speaker (and their
    repetitions) shares a partition.
    """
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    digest = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    percentage_hash = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def read_list_file(path):
    """Relative clip paths ("word/name.wav") listed in a partition file, in order."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = [line.strip().replace("\\", "/") for line in file if line.strip()]
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text list of clips (byte {error.start} is not UTF-8); "
                        "it should hold one word/file.wav per line") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror or error})") from None
    if any("\0" in line for line in lines):
        raise UserError(f"{path}: not a text list of clips (it holds NUL bytes)")
    return lines
