"""Export a trained run for the microcontroller (the original freeze.py + toco).

  microkws export TRAIN_DIR

writes into TRAIN_DIR: model.tflite (full-integer int8, batch 1, TFLM ops only;
for micro features its input is quantised exactly as the device maps its
frontend output: scale 0.10162353515625, zero point -128), model_float.tflite,
model_data.cc / model_data.h (the int8 model as a C array for firmware),
saved_model/ (16 kHz audio in, label probabilities out) and device_report.json
(`microkws verify` of model.tflite). Quantisation calibrates on a few hundred
training clips, never validation or test clips.

toco's flags are accepted: --inference_type uint8 (or QUANTIZED_UINT8) gives
uint8 input and output for older firmware, and --mean_values / --std_values set
the input encoding, real = (q - mean) / std with q of the inference type
(the tutorial's uint8 --mean_values=0 --std_values=9.8077 covers 0..26).

`microkws freeze TRAIN_DIR` writes only saved_model/, the part the original
freeze.py made.
"""

from microkws.cli._flags import add_flag
from microkws.train.config import WEIGHT_SCALES


def add_arguments(parser):
    parser.add_argument("train_dir", nargs="?", metavar="TRAIN_DIR", help="the run directory of `microkws train`")
    add_flag(parser, "--train_dir", dest="train_dir_flag", metavar="DIR", help="the same, as a flag")
    conversion = parser.add_argument_group("conversion (`microkws export` only)")
    add_flag(conversion, "--inference_type", default="int8", metavar="TYPE",
             help="int8 (default) or uint8 for older firmware (toco's QUANTIZED_UINT8 also accepted)")
    add_flag(conversion, "--mean_values", type=float, default=None, metavar="MEAN",
             help="input zero point, as toco: real = (q - mean) / std (default: the device's mapping)")
    add_flag(conversion, "--std_values", type=float, default=None, metavar="STD",
             help="input steps per feature unit, as toco (default: the device's mapping)")
    add_flag(conversion, "--weight_scales", choices=WEIGHT_SCALES, default=None,
             help="int8 weight scales: per_channel or per_tensor (smaller flatbuffer) (default: the run's, "
                  "per_channel unless trained with --weight_scales per_tensor)")
    add_flag(conversion, "--c_name", default="g_model", metavar="NAME",
             help="C name of the model array in model_data.cc (default: %(default)s)")
    add_flag(conversion, "--no_verify", action="store_true",
             help="skip running the model on TFLM afterwards: no device_report.json or model_settings.h "
                  "(`microkws verify TRAIN_DIR` writes them)")
    add_flag(parser, "--no_progress", action="store_true", help="no progress bars")


def run(args):
    from microkws.errors import UserError

    train_dir = args.train_dir or args.train_dir_flag
    if not train_dir:
        raise UserError(f"name the run directory: microkws {args.command} TRAIN_DIR")
    if args.command == "freeze":
        from microkws.export import export_saved_model

        print(export_saved_model(train_dir))
        return 0
    from microkws.device import format_report
    from microkws.pipeline import export_and_verify

    result = export_and_verify(
        train_dir,
        inference_type=args.inference_type,
        mean_values=args.mean_values,
        std_values=args.std_values,
        c_name=args.c_name,
        weight_scales=args.weight_scales,
        verify_model=not args.no_verify,
        progress=not args.no_progress,
    )
    for path in result["files"].values():
        print(path)
    if result["report"] is not None:
        print()
        print(format_report(result["report"]))
    return 0
