"""Make a long test recording for streaming accuracy (the original generate_streaming_test_wav).

  microkws stream-test-wav --data_dir DIR --wanted_words yes,no --out long.wav --labels labels.txt

Test-split clips of the wanted words and of other words (unknown) at random times, one per
clip + --word_gap_ms on average, over background noise from _background_noise_; the labels file
lists "word,time_ms" per word (unknown words as _unknown_), time_ms where its clip starts.
Score a model on it with `microkws stream-eval MODEL long.wav labels.txt`.
"""

from microkws.cli._flags import add_flag, add_setting, comma_list, number, settings_from_args
from microkws.dataset import DataConfig

DATA_SETTINGS = ("wanted_words", "split", "validation_percentage", "testing_percentage")
"""The DataConfig fields this command's data flags set (its --unknown_percentage and --seed are the mix's)."""


def add_arguments(parser):
    data = parser.add_argument_group("data")
    add_flag(data, "--data_dir", required=True, metavar="DIR", help="folder in Speech Commands layout")
    add_setting(data, DataConfig, "wanted_words", type=comma_list, metavar="W1,W2",
                help="words to say, comma-separated; the model's wanted words")
    add_setting(data, DataConfig, "split", choices=("auto", "lists", "hash"),
                help="how the test split is found, as for `microkws train`")
    add_setting(data, DataConfig, "validation_percentage", type=number(), metavar="PCT",
                help="for the file-name split")
    add_setting(data, DataConfig, "testing_percentage", type=number(), metavar="PCT",
                help="for the file-name split")

    output = parser.add_argument_group("output")
    add_flag(output, "--out", "--output_audio_file", "--output-audio-file", required=True, metavar="LONG.wav",
             help="the recording (16-bit PCM WAV)")
    add_flag(output, "--output_labels_file", required=True,
             metavar="LABELS.txt", help="the ground truth: word,time_ms per line")

    mix = parser.add_argument_group("mix")
    add_flag(mix, "--test_duration_seconds", type=number(1, 24 * 3600), default=600, metavar="S",
             help="length of the recording (default: %(default)s)")
    add_flag(mix, "--word_gap_ms", type=number(1, 60_000, whole=True), default=2000, metavar="MS",
             help="average gap between words (default: %(default)s)")
    add_flag(mix, "--background_volume", type=number(0, 100), default=0.1, metavar="V",
             help="background noise volume, at most (default: %(default)s)")
    add_flag(mix, "--unknown_percentage", type=number(0, 100), default=30.0, metavar="PCT",
             help="share of words that are unknown words (default: %(default)s)")
    add_flag(mix, "--sample_rate", type=number(4000, 192_000, whole=True), default=16000, help="(default: %(default)s)")
    add_flag(mix, "--clip_duration_ms", type=number(100, 10_000, whole=True), default=1000, help="(default: %(default)s)")
    add_flag(mix, "--seed", type=number(0, 2**32 - 1, whole=True), default=0, help="random seed (default: %(default)s)")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bar")


def run(args):
    from microkws.streaming.testwav import make_streaming_test_wav

    data_config = settings_from_args(DataConfig, args, names=DATA_SETTINGS, data_dir=args.data_dir)
    summary = make_streaming_test_wav(
        data_config, audio_path=args.out, labels_path=args.output_labels_file, duration_s=args.test_duration_seconds,
        word_gap_ms=args.word_gap_ms, background_volume=args.background_volume,
        unknown_percentage=args.unknown_percentage, seed=args.seed, sample_rate=args.sample_rate,
        clip_duration_ms=args.clip_duration_ms, progress=not args.no_progress,
    )
    print(f"{summary['audio']}: {summary['duration_s']:g} s, {summary['words']} words "
          f"({summary['unknown_words']} unknown); ground truth in {summary['labels']}")
    return 0
