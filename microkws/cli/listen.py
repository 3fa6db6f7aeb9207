"""Spot keywords live, from the microphone (or from a file at real-time pace).

  microkws listen MODEL [--wav FILE [--speed 1.0]]

Prints a line such as "Heard yes (0.93) at 12.34 s" for each keyword the model hears; Ctrl-C stops.
Audio goes through the device's path in 20 ms chunks: the streaming frontend, the model every
--clip_stride_ms, and RecognizeCommands. --wav FILE streams a file through the same code, in real time
(--speed 1), faster (--speed 4) or as fast as possible (--speed 0).

The microphone needs the optional sounddevice package and PortAudio: pip install "microkws[listen]"
(Debian/Ubuntu: apt install libportaudio2). MODEL is loaded as by `microkws stream-eval`, and a
calibrated run's detection.json gives the recognition settings that are not given as flags.
"""

from microkws.cli._flags import (
    add_flag,
    add_model_arguments,
    add_recognition_arguments,
    detection_from_args,
    model_from_args,
    number,
)


def add_arguments(parser):
    add_model_arguments(parser, default="tflite")
    source = parser.add_argument_group("audio")
    add_flag(source, "--wav", metavar="FILE", help="stream this file instead of the microphone")
    add_flag(source, "--speed", type=number(0, 1000), default=1.0, metavar="X",
             help="with --wav: 1.0 real time (default), 2.0 twice as fast, 0 as fast as possible")
    add_flag(source, "--device", default=None, metavar="ID",
             help="input device number or name (default: the system's; list them with `python -m sounddevice`)")
    add_flag(source, "--seconds", type=number(above=0), default=None, metavar="S", help="stop after S seconds of audio")
    add_recognition_arguments(parser)


def run(args):
    import sys

    from microkws.streaming.listen import listen, microphone_chunks, wav_chunks

    model = model_from_args(args)
    detection, origin = detection_from_args(args, model)
    rate = model.feature_config.sample_rate
    if args.wav:
        source = wav_chunks(args.wav, sample_rate=rate, speed=args.speed,
                            min_samples=model.feature_config.desired_samples)
        if args.seconds is not None:
            source = _first_seconds(source, args.seconds * rate)
    else:
        device = int(args.device) if args.device is not None and args.device.isdigit() else args.device
        source = microphone_chunks(sample_rate=rate, device=device, max_seconds=args.seconds)
        next_chunk = next(source, None)  # opens the device now, so a missing one is an error before anything else
        source = _prepend(next_chunk, source)
        print(f"listening for {', '.join(_keywords(model))} (Ctrl-C stops)", file=sys.stderr)
    source = _say_first(origin, source)
    recognizer = detection.recognizer(model.labels, model.score_threshold(detection.detection_threshold))
    try:
        listen(model, source, recognizer=recognizer, clip_stride_ms=args.clip_stride_ms,
               on_heard=lambda heard: print(heard, flush=True))
    except KeyboardInterrupt:  # Ctrl-C is how listening ends
        print("stopped", file=sys.stderr)
    return 0


def _keywords(model):
    from microkws.dataset.labels import keyword_indices

    return [model.labels[i] for i in keyword_indices(model.labels)]


def _say_first(line, chunks):
    """`chunks`, printing `line` to stderr before the first: after the audio opened, so that a missing
    microphone or a bad file stays a one-line error."""
    import sys

    for index, chunk in enumerate(chunks):
        if index == 0:
            print(line, file=sys.stderr)
        yield chunk


def _prepend(first, rest):
    if first is not None:
        yield first
    yield from rest


def _first_seconds(chunks, samples):
    seen = 0
    for chunk in chunks:
        if seen >= samples:
            return
        yield chunk[:int(samples - seen)]
        seen += len(chunk)
