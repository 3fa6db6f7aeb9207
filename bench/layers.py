"""Training layers: Keras 3's own against ours (models._common), one kind at a time.

--layer batchnorm: Keras's BatchNormalization against FusedBatchNormalization (TensorFlow's fused kernel);
--layer dropout: Keras's Dropout against PackedDropout (masks from 8- or 16-bit fields of random words).

For each model (the tutorial's tiny_conv with its plain gradient descent, ds_cnn (MLPerf Tiny's, Adam) and the
recommended model (ds_cnn 40 channels, 3 blocks, its AdamW recipe)) times the training floor, compiled steps on
batches of 100 already in memory, 20 to a call as the loop runs them, once with each layer (the same model,
weights and batches; the two alternate, twice each, and the faster round of each counts). Prints ms per step,
and steps per second times multiply-accumulates against issue 12's baseline (ds_cnn at about 550 ms a step;
target: 3 times its MACs per second). A model without the layer is skipped.

    python bench/layers.py [--layer dropout] [--steps 100]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BASELINE_MS, BASELINE_MACS = 550.0, 10_624_256
"""Issue 12's ds_cnn step (batch 100) and its multiply-accumulates per inference."""


def floor_ms(model, config, steps):
    """ms per step of `model`'s compiled training steps on random ready-made batches (bench/train.py's floor)."""
    from microkws.features import FeatureConfig
    from microkws.train.steps import make_optimizer, make_train_steps
    from train import compiled_floor_ms, ready_batches

    train_steps = make_train_steps(model, make_optimizer(config), quantize=True,
                                   label_smoothing=config.label_smoothing)
    return compiled_floor_ms(train_steps, ready_batches(FeatureConfig().fingerprint_size), steps)


def keras_layers(model, ours, theirs):
    """The same model and weights with Keras's layer `theirs` wherever it has our subclass `ours`."""
    from microkws._tensorflow import keras

    def clone(layer):
        kind = theirs if isinstance(layer, ours) else type(layer)
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer", choices=("batchnorm", "dropout"), default="batchnorm")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per round (default: %(default)s)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)

    from microkws._tensorflow import keras  # first: it sets up TensorFlow (oneDNN kernels) before import
    from microkws.features import FeatureConfig
    from microkws.models import build_model, count_macs
    from microkws.models._common import FusedBatchNormalization, PackedDropout
    from microkws.train import TrainConfig
    from microkws.train.recipes import recommended_recipe

    ours, theirs = {"batchnorm": (FusedBatchNormalization, keras.layers.BatchNormalization),
                    "dropout": (PackedDropout, keras.layers.Dropout)}[args.layer]
    _, recommended = recommended_recipe()
    candidates = {"tiny_conv (the tutorial's), gradient descent": TrainConfig(),
                  "ds_cnn (MLPerf), Adam": TrainConfig(model_architecture="ds_cnn", optimizer="adam"),
                  "recommended (ds_cnn 40-64 ch, 3 blocks), AdamW": recommended}
    print(f"| model | MACs | Keras's {theirs.__name__} | {ours.__name__} | speed-up | MACs x steps/s against issue "
          "12's ds_cnn (Keras / ours; target 3x) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, config in candidates.items():
        keras.utils.set_random_seed(0)
        model = build_model(config.model_architecture, input_shape=FeatureConfig().shape, label_count=4,
                            dropout_rate=config.dropout_rate, config=config.model_settings())
        if not any(isinstance(layer, ours) for layer in model.layers):
            continue
        plain = keras_layers(model, ours, theirs)
        times = {"keras": [], "ours": []}
        for _ in range(2):
            times["keras"].append(floor_ms(plain, config, args.steps))
            times["ours"].append(floor_ms(model, config, args.steps))
        keras_ms, ours_ms = min(times["keras"]), min(times["ours"])
        macs = count_macs(model)
        gain = [macs / ms / (BASELINE_MACS / BASELINE_MS) for ms in (keras_ms, ours_ms)]
        print(f"| {name} | {macs:,} | {keras_ms:.1f} ms | {ours_ms:.1f} ms | {keras_ms / ours_ms:.2f}x | "
              f"{gain[0]:.2f}x / {gain[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
