"""Train a keyword-spotting model (the original speech_commands train.py, in minutes).

Takes the original's flags in both spellings (--wanted_words and --wanted-words),
so the micro_speech tutorial's command works as written:

  microkws train --model_architecture=tiny_conv --window_stride=20 --preprocess=micro
      --wanted_words="up,down" --silence_percentage=25 --unknown_percentage=25 --quantize=1
      --data_dir DIR

Re-running the same command on the same --train_dir resumes where it stopped.
The run directory ends up holding config.json, labels.txt, checkpoints, the
best model (model.keras) and the test metrics (metrics.json).
"""

import logging
import os

from microkws.cli._flags import add_data_arguments, add_flag, comma_list, data_config_from_args, str_to_bool
from microkws.dataset import AugmentConfig
from microkws.features import PREPROCESS_MODES, FeatureConfig
from microkws.train.config import OPTIMIZERS, TrainConfig

VERBOSITY = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
             "fatal": logging.CRITICAL}


def add_arguments(parser):
    add_data_arguments(parser)
    add_flag(parser, "--data_url", default="", metavar="URL",
             help="download the data set from URL into --data_dir if that folder is missing "
                  "(default: none; see `microkws download`)")
    add_feature_arguments(parser)

    augment = parser.add_argument_group("augmentation (training clips only)")
    add_flag(augment, "--time_shift_ms", type=float, default=100.0, metavar="MS",
             help="random time shift range (default: %(default)s)")
    add_flag(augment, "--background_volume", type=float, default=0.1, metavar="V",
             help="how loud the background noise is, at most (default: %(default)s)")
    add_flag(augment, "--background_frequency", type=float, default=0.8, metavar="P",
             help="share of training clips with background noise (default: %(default)s)")

    training = parser.add_argument_group("training")
    add_flag(training, "--model_architecture", default="tiny_conv", metavar="NAME",
             help="tiny_conv (default), conv, single_fc, low_latency_conv, low_latency_svdf, "
                  "tiny_embedding_conv or ds_cnn")
    add_flag(training, "--how_many_training_steps", type=comma_list, default=("15000", "3000"), metavar="N1,N2",
             help="steps of each learning-rate phase (default: 15000,3000)")
    add_flag(training, "--learning_rate", type=comma_list, default=("0.001", "0.0001"), metavar="R1,R2",
             help="learning rate of each phase (default: 0.001,0.0001)")
    add_flag(training, "--batch_size", type=int, default=100, help="examples per step (default: %(default)s)")
    add_flag(training, "--eval_step_interval", type=int, default=400, metavar="N",
             help="validate every N steps (default: %(default)s)")
    add_flag(training, "--save_step_interval", type=int, default=100, metavar="N",
             help="checkpoint every N steps (default: %(default)s)")
    add_flag(training, "--optimizer", choices=OPTIMIZERS, default="gradient_descent",
             help="(default: %(default)s)")
    add_flag(training, "--dropout_rate", type=float, default=None, metavar="R",
             help="dropout while training (default: the architecture's, 0.5 for the original models)")
    add_flag(training, "--quantize", type=str_to_bool, default=False, metavar="0|1",
             help="train for an 8-bit model (default: 0)")
    add_flag(training, "--check_nans", type=str_to_bool, default=False, metavar="0|1",
             help="stop with an error when the loss becomes NaN (default: 0)")
    add_flag(training, "--fresh_unknowns", type=str_to_bool, default=True, metavar="0|1",
             help="draw unknown examples from all other words on every step (default: 1); 0 reuses the "
                  "original's single fixed draw")
    add_flag(training, "--seed", type=int, default=0, help="random seed of the run (default: %(default)s)")

    output = parser.add_argument_group("output")
    add_flag(output, "--train_dir", default="runs/train", metavar="DIR",
             help="run directory for checkpoints, model and metrics (default: %(default)s)")
    add_flag(output, "--summaries_dir", default=None, metavar="DIR",
             help="TensorBoard logs (default: TRAIN_DIR/logs)")
    add_flag(output, "--start_checkpoint", default="", metavar="FILE",
             help="initialise from this checkpoint (.npz) instead of from scratch")
    add_flag(output, "--export", type=str_to_bool, default=True, metavar="0|1",
             help="export model.tflite, model_data.cc and saved_model/ and verify on TFLM at the end (default: 1)")
    add_flag(output, "--verbosity", choices=sorted(VERBOSITY), default="info", help="log level (default: info)")
    add_flag(output, "--no_progress", action="store_true", help="no progress bar")


def add_feature_arguments(parser):
    group = parser.add_argument_group("features")
    add_flag(group, "--preprocess", choices=PREPROCESS_MODES, default="micro",
             help="micro: TFLM's audio frontend, as on the device (default); mfcc or average: the original's others")
    add_flag(group, "--sample_rate", type=int, default=16000, help="(default: %(default)s)")
    add_flag(group, "--clip_duration_ms", type=int, default=1000, help="(default: %(default)s)")
    add_flag(group, "--window_size_ms", type=float, default=30.0, help="(default: %(default)s)")
    add_flag(group, "--window_stride_ms", "--window_stride", "--window-stride", type=float, default=20.0,
             help="(default: %(default)s)")
    add_flag(group, "--feature_bin_count", type=int, default=40, help="(default: %(default)s)")
    return group


def feature_config_from_args(args):
    return FeatureConfig(
        preprocess=args.preprocess,
        sample_rate=args.sample_rate,
        clip_duration_ms=args.clip_duration_ms,
        window_size_ms=args.window_size_ms,
        window_stride_ms=args.window_stride_ms,
        feature_bin_count=args.feature_bin_count,
    )


def run(args):
    from microkws.pipeline import train_and_export

    logging.getLogger().setLevel(VERBOSITY[args.verbosity])
    train_config = TrainConfig(
        model_architecture=args.model_architecture,
        how_many_training_steps=args.how_many_training_steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        eval_step_interval=args.eval_step_interval,
        save_step_interval=args.save_step_interval,
        optimizer=args.optimizer,
        dropout_rate=args.dropout_rate,
        quantize=args.quantize,
        check_nans=args.check_nans,
        fresh_unknowns=args.fresh_unknowns,
        seed=args.seed,
    )
    augment_config = AugmentConfig(
        time_shift_ms=args.time_shift_ms,
        background_volume=args.background_volume,
        background_frequency=args.background_frequency,
    )
    feature_config = feature_config_from_args(args)
    data_config = data_config_from_args(args)
    if args.data_url and not os.path.isdir(args.data_dir):
        from microkws.download import Archive, download_archive

        data_dir = os.path.abspath(args.data_dir)
        archive = Archive(url=args.data_url, folder=os.path.basename(data_dir))
        download_archive(archive, dest=os.path.dirname(data_dir), progress=not args.no_progress)
    metrics = train_and_export(
        args.train_dir,
        data_config=data_config,
        feature_config=feature_config,
        augment_config=augment_config,
        train_config=train_config,
        start_checkpoint=args.start_checkpoint or None,
        summaries_dir=args.summaries_dir,
        export=args.export,
        progress=not args.no_progress,
    )
    print(f"test accuracy (float): {100 * metrics['test_accuracy']:.1f}% ({metrics['test_examples']} examples); "
          f"run in {args.train_dir}")
    accepts = metrics["test_every_unknown"]["unknown_false_accepts"]
    if accepts["unknown_clips"]:
        print(f"other words taken for a wanted word: {100 * accepts['rate']:.1f}% of the "
              f"{accepts['unknown_clips']} test clips of other words")
    recall = metrics["test_every_unknown"].get("keyword_recall")
    if recall:
        from microkws.metrics import format_keyword_recall

        print(format_keyword_recall(recall))
    if metrics.get("export"):
        from microkws.device import format_report

        print(format_report(metrics["export"]["report"]))
    return 0
