"""The whole pipeline as one TensorFlow SavedModel: 16 kHz audio in, label probabilities out.

The role of the original `freeze.py` graph: features and model together, for
running on a server or checking a clip end to end. Endpoints:

    serve(audio)     float32 [batch, desired_samples] samples in [-1, 1]
                     -> {"probabilities": float32 [batch, labels]}
    features(audio)  the same audio -> float32 [batch, frames * bins], the
                     training-scale features the model sees

labels.txt beside saved_model.pb lists the labels in output order.

The micro mode runs TensorFlow's `AudioMicrofrontend` op, the same C code as
TFLM's frontend: audio is cast to int16 as microkws does (trunc(x * 32768),
saturating) and the uint16 output scaled by 10/256, so the features equal
`microkws.features.compute_features` bit for bit. The op lives in
`tensorflow.lite.experimental.microfrontend`, outside TF's public API, and
is a custom op: load the SavedModel after
`import tensorflow.lite.experimental.microfrontend.python.ops.audio_microfrontend_op`
(which registers it), e.g. via `load_saved_model` below. tests/test_export.py
notices if the module moves or its output changes. The mfcc and average
modes use TF's AudioSpectrogram / Mfcc ops, as microkws.features.spectral does.
"""

import os
import shutil

from microkws._quiet import quiet
from microkws.errors import UserError, first_line
from microkws.files import low_disk_note, replace_directory, staging_directory, write_text
from microkws.train.rundir import LABELS_FILE

SAVED_MODEL_DIR = "saved_model"


def save_audio_model(model, *, feature_config, labels, path):
    """Write `model` (float features -> logits or probabilities) with its feature pipeline to `path`.

    `model` should already end in a softmax (`microkws.models.with_softmax`).
    The directory is built beside `path` and moved into place when complete.
    """
    from microkws._tensorflow import keras, tf

    features_fn = feature_graph(feature_config)
    signature = [tf.TensorSpec([None, feature_config.desired_samples], tf.float32, name="audio")]

    def serve(audio):
        return {"probabilities": model(features_fn(audio), training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.add_endpoint("features", features_fn, input_signature=signature)
    built = staging_directory(path)
    try:
        with quiet("SavedModel export"):
            archive.write_out(built, verbose=False)
        write_text(os.path.join(built, LABELS_FILE), "\n".join(labels) + "\n")
        return replace_directory(built, path)
    except (OSError, tf.errors.OpError) as error:
        raise UserError(f"{path}: cannot write the SavedModel ({first_line(error)}){low_disk_note(built)}") from None
    finally:
        shutil.rmtree(built, ignore_errors=True)


def load_saved_model(path):
    """Load a SavedModel written by `save_audio_model`, registering the microfrontend op first."""
    from microkws._tensorflow import tf

    _microfrontend()
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise UserError(f"{path}: no saved_model.pb; run `microkws freeze TRAIN_DIR` first")
    return tf.saved_model.load(path)


def feature_graph(feature_config):
    """A TF function: float audio [batch, samples] -> float32 training-scale features [batch, frames*bins]."""
    if feature_config.preprocess == "micro":
        return _micro_features(feature_config)
    return _spectral_features(feature_config)


def _micro_features(config):
    from microkws._tensorflow import tf

    frontend = _microfrontend()
    window_ms, step_ms = _whole_ms(config.window_size_ms, "window_size_ms"), _whole_ms(
        config.window_stride_ms, "window_stride_ms")
    frames, bins = config.shape

    def one_clip(pcm):
        filterbanks = frontend.audio_microfrontend(
            pcm,
            sample_rate=config.sample_rate,
            window_size=window_ms,
            window_step=step_ms,
            num_channels=config.feature_bin_count,
            **config.frontend_options(),
            out_type=tf.uint16,
        )
        # The training scale: uint16 * 10 / 256, exact in float32.
        return tf.reshape(tf.cast(filterbanks, tf.float32) * (10.0 / 256.0), [frames * bins])

    def features(audio):
        # microkws.audio.to_int16: trunc(x * 32768), saturating at the ends. The bounds are
        # whole numbers, so clipping first and truncating in the float -> int cast is the same.
        scaled = tf.clip_by_value(audio * 32768.0, -32768.0, 32767.0)
        pcm = tf.cast(tf.cast(scaled, tf.int32), tf.int16)
        return tf.map_fn(one_clip, pcm, fn_output_signature=tf.TensorSpec([frames * bins], tf.float32))

    return features


def _spectral_features(config):
    from microkws._tensorflow import tf

    from microkws.features.spectral import (
        MFCC_FILTERBANK_CHANNEL_COUNT,
        MFCC_LOWER_FREQUENCY_LIMIT,
        MFCC_UPPER_FREQUENCY_LIMIT,
    )

    frames, bins = config.shape

    def features(audio):
        clips = tf.clip_by_value(audio, -1.0, 1.0)
        # AudioSpectrogram wants [samples, channels] and returns [channels, frames, fft bins].
        spectrogram = tf.raw_ops.AudioSpectrogram(
            input=tf.transpose(clips),
            window_size=config.window_size_samples,
            stride=config.window_stride_samples,
            magnitude_squared=True,
        )
        if config.preprocess == "mfcc":
            values = tf.raw_ops.Mfcc(
                spectrogram=spectrogram,
                sample_rate=tf.constant(config.sample_rate, tf.int32),
                upper_frequency_limit=MFCC_UPPER_FREQUENCY_LIMIT,
                lower_frequency_limit=MFCC_LOWER_FREQUENCY_LIMIT,
                filterbank_channel_count=MFCC_FILTERBANK_CHANNEL_COUNT,
                dct_coefficient_count=config.feature_bin_count,
            )
        else:
            width = config.average_window_width
            values = tf.nn.avg_pool2d(spectrogram[..., tf.newaxis], ksize=(1, width), strides=(1, width),
                                      padding="SAME")[..., 0]
        return tf.reshape(values, [-1, frames * bins])

    return features


def _whole_ms(value, name):
    if float(value) != int(value):
        raise UserError(f"the micro frontend op takes whole milliseconds; {name} is {value}")
    return int(value)


def _microfrontend():
    """TF's audio_microfrontend op module (experimental; importing it registers the custom op)."""
    import microkws._tensorflow  # noqa: F401 - TensorFlow first, quietly

    try:
        from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op
    except ImportError as error:
        raise UserError(
            f"this TensorFlow has no audio_microfrontend op ({error}); the micro SavedModel needs it"
        ) from None
    return audio_microfrontend_op
