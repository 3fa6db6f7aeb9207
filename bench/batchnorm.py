"""Batch norm in training: Keras 3's own layer against the fused kernel (models._common.FusedBatchNormalization).

For ds_cnn (MLPerf Tiny's, Adam) and the recommended model (ds_cnn 40 channels, 3 blocks, its AdamW recipe),
times the training floor, compiled steps on batches of 100 already in memory, 20 to a call as the loop runs
them, once with each batch norm (the same model, weights and batches; the two alternate, twice each, and the
faster round of each counts). Prints ms per step, and steps per second times multiply-accumulates against
issue 12's baseline (ds_cnn at about 550 ms a step; target: 3 times its MACs per second).

    python bench/batchnorm.py [--steps 100]
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


def unfused(model):
    """The same model and weights with Keras' own BatchNormalization."""
    from microkws._tensorflow import keras
    from microkws.models._common import FusedBatchNormalization

    def clone(layer):
        kind = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else type(layer)
        return kind.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per round (default: %(default)s)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)

    from microkws._tensorflow import keras  # first: it sets up TensorFlow (oneDNN kernels) before import
    from microkws.features import FeatureConfig
    from microkws.models import build_model, count_macs
    from microkws.train import TrainConfig
    from microkws.train.recipes import recommended_recipe

    _, recommended = recommended_recipe()
    candidates = {"ds_cnn (MLPerf), Adam": TrainConfig(model_architecture="ds_cnn", optimizer="adam"),
                  "recommended (ds_cnn 40 ch, 3 blocks), AdamW": recommended}
    print("| model | MACs | Keras batch norm | fused batch norm | speed-up | MACs x steps/s against issue 12's ds_cnn "
          "(Keras / fused; target 3x) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, config in candidates.items():
        keras.utils.set_random_seed(0)
        fused = build_model(config.model_architecture, input_shape=FeatureConfig().shape, label_count=4,
                            dropout_rate=config.dropout_rate, config=config.model_settings())
        plain = unfused(fused)
        times = {"keras": [], "fused": []}
        for _ in range(2):
            times["keras"].append(floor_ms(plain, config, args.steps))
            times["fused"].append(floor_ms(fused, config, args.steps))
        keras_ms, fused_ms = min(times["keras"]), min(times["fused"])
        macs = count_macs(fused)
        gain = [macs / ms / (BASELINE_MACS / BASELINE_MS) for ms in (keras_ms, fused_ms)]
        print(f"| {name} | {macs:,} | {keras_ms:.1f} ms | {fused_ms:.1f} ms | {keras_ms / fused_ms:.2f}x | "
              f"{gain[0]:.2f}x / {gain[1]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
