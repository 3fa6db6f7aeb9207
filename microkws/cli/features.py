"""Compute the features of one audio file (the original wav_to_features).

The clip is read (any WAV: resampled to the sample rate, channels averaged,
padded or trimmed to one clip) and turned into [frames, bins] features.
--format int8 gives exactly the 49x40 int8 array a TFLM micro_speech device
computes from the same audio; uint16 the frontend's raw output; float the
scale models train on (micro: uint16 * 10/256).
"""

import os
import re

import numpy as np

from microkws.cli._flags import add_feature_arguments, add_flag, feature_config_from_args
from microkws.errors import UserError
from microkws.files import write_text, write_with

FORMATS = ("float", "uint16", "int8")


def add_arguments(parser):
    parser.add_argument("wav", metavar="WAV", help="audio file")
    add_feature_arguments(parser)
    add_flag(parser, "--format", choices=FORMATS, default="float",
             help="float (training scale, default), uint16 (micro frontend output) or int8 (the device's input)")
    output = parser.add_mutually_exclusive_group()
    add_flag(output, "--out", metavar="FILE.npy", help="save the array as .npy")
    add_flag(output, "--c_array", metavar="FILE.cc", help="save the array as a C source file")


def run(args):
    config = feature_config_from_args(args)
    features = wav_features(args.wav, config, args.format)
    if args.out:
        write_with(args.out, lambda file: np.save(file, features))
        print(f"{args.out}: {features.dtype} {'x'.join(map(str, features.shape))}")
    elif args.c_array:
        write_text(args.c_array, c_array_source(features, args.wav, config))
        print(f"{args.c_array}: {features.dtype} {'x'.join(map(str, features.shape))}")
    else:
        with np.printoptions(threshold=np.inf, linewidth=200):
            print(features)
    return 0


def wav_features(path, config, output_format="float"):
    """Features of one file, [frames, bins], in `output_format` (float, uint16 or int8)."""
    from microkws.audio import fit_to_length, read_audio, to_int16

    if output_format != "float" and config.preprocess != "micro":
        raise UserError(f"--format {output_format} needs --preprocess micro (mfcc and average are float)")
    clip = to_int16(fit_to_length(read_audio(path, sample_rate=config.sample_rate), config.desired_samples))
    if output_format == "float":
        from microkws.features import compute_features

        return compute_features(clip, config)
    from microkws.features.micro import micro_features, to_int8

    raw = micro_features(clip, config)
    return to_int8(raw) if output_format == "int8" else raw


def c_array_source(features, source_path, config):
    """A C file defining the features as a flat array plus its width and height."""
    name = re.sub(r"\W", "_", os.path.splitext(os.path.basename(source_path))[0])
    c_type = {"int8": "int8_t", "uint16": "uint16_t", "float32": "float"}[features.dtype.name]
    values = features.reshape(-1)
    text = [f"{v:.6g}f" if c_type == "float" else str(int(v)) for v in values]
    rows = [", ".join(text[i:i + features.shape[1]]) for i in range(0, len(text), features.shape[1])]
    return (
        f"// Features of {os.path.basename(source_path)} computed by microkws: preprocess={config.preprocess}, "
        f"window {config.window_size_ms:g} ms, stride {config.window_stride_ms:g} ms.\n"
        "#include <stdint.h>\n\n"
        f"const int g_{name}_features_width = {features.shape[1]};\n"
        f"const int g_{name}_features_height = {features.shape[0]};\n"
        f"const {c_type} g_{name}_features_data[] = {{\n  " + ",\n  ".join(rows) + ",\n};\n"
    )
