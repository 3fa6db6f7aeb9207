"""The training loop: the original train.py's schedule, resumable, keeping the best model.

A run directory holds everything about one run:

    config.json        every setting (data, features, augmentation, training, labels)
    labels.txt         one label per line, in output order (the original's format)
    checkpoints/       ckpt-NNNNNN.npz, the newest few; re-running resumes from the latest
    best.npz           weights with the best validation accuracy so far, over every validation clip:
                       the wanted words, silence, and every clip of the other words as unknown
    model.keras        the best model, float, logits out
    metrics.json       test accuracy and confusion matrix of the best model
    logs/              TensorBoard scalars (or --summaries_dir)
"""

import contextlib
import dataclasses
import json
import logging
import math
import os
import time

import numpy as np

from microkws.dataset import (
    UNKNOWN_LABEL,
    AugmentConfig,
    DataConfig,
    index_dataset,
    load_backgrounds,
    load_clips,
    load_partition,
)
from microkws.errors import UserError
from microkws.evaluate import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    format_confusion,
    format_keyword_recall,
    keyword_recall,
    unknown_false_accepts,
)
from microkws.features import FeatureConfig, compute_features
from microkws.files import write_json, write_text
from microkws.train.batches import TrainingBatches
from microkws.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from microkws.train.config import TrainConfig
from microkws.train.quantize import make_qat_train_step, snap_to_device_grid

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LABELS_FILE = "labels.txt"
BEST_FILE = "best.npz"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


def run_config(data_config, feature_config, augment_config, train_config):
    """The run's complete settings as a JSON-able dict (what config.json holds)."""
    data = data_config.to_dict()
    data["data_dir"] = os.path.abspath(data["data_dir"])
    return {
        "labels": list(data_config.labels),
        "data": data,
        "features": feature_config.to_dict(),
        "augment": augment_config.to_dict(),
        "train": train_config.to_dict(),
    }


def load_run_config(run_dir):
    """(DataConfig, FeatureConfig, AugmentConfig, TrainConfig, labels) of a run directory."""
    path = os.path.join(run_dir, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except FileNotFoundError:
        raise UserError(f"{run_dir}: no {CONFIG_FILE}; is it a microkws run directory (--train_dir)?") from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    return (
        DataConfig.from_dict(config["data"], source=path),
        FeatureConfig.from_dict(config["features"], source=path),
        AugmentConfig(**config["augment"]),
        TrainConfig.from_dict(config["train"], source=path),
        tuple(config["labels"]),
    )


def train(run_dir, *, data_config, feature_config=None, augment_config=None, train_config=None,
          start_checkpoint=None, summaries_dir=None, export=True, progress=True):
    """Train a model into `run_dir`; resumes if `run_dir` holds checkpoints of the same settings.

    Configs left as None take their defaults (the micro_speech recipe's features,
    the original's augmentation and schedule). Returns the final metrics dict
    (also written to metrics.json). With `export`, the best model is then
    exported for the device and verified on TFLM's kernels
    (`microkws.export.export_run`), and metrics["export"] holds its files and device report.
    """
    from microkws._tensorflow import keras, tf

    from microkws.models import build_model

    feature_config = feature_config or FeatureConfig()
    augment_config = augment_config or AugmentConfig()
    train_config = train_config or TrainConfig()
    settings = run_config(data_config, feature_config, augment_config, train_config)
    _check_run_dir(run_dir, settings)
    labels = list(data_config.labels)
    checkpoints_dir = os.path.join(run_dir, "checkpoints")
    data = _load_data(data_config, feature_config, augment_config, train_config, progress=progress)
    # Written once the data is known to be usable, so a run that failed on bad
    # data does not pin its settings to the run directory.
    _write_settings(run_dir, settings)
    os.makedirs(checkpoints_dir, exist_ok=True)
    keras.utils.set_random_seed(train_config.seed)
    model = build_model(
        train_config.model_architecture,
        input_shape=feature_config.shape,
        label_count=len(labels),
        dropout_rate=train_config.dropout_rate,
    )
    optimizer = make_optimizer(train_config)
    optimizer.build(model.trainable_variables)
    expect = {
        "architecture": train_config.model_architecture,
        "labels": labels,
        "input_shape": list(feature_config.shape),
    }
    state = {"step": 0, "best_accuracy": -1.0, "best_step": 0}
    resume_from = latest_checkpoint(checkpoints_dir) or start_checkpoint
    if resume_from:
        meta = load_checkpoint(resume_from, model=model, optimizer=optimizer, expect=expect)
        if resume_from != start_checkpoint:
            state.update({k: meta[k] for k in state})
        log.info("resuming from %s at step %d", resume_from, state["step"])

    train_step = (make_qat_train_step if train_config.quantize else make_train_step)(model, optimizer)
    writers = _summary_writers(summaries_dir or os.path.join(run_dir, "logs"))
    total = train_config.total_steps
    batches = data["training"].iterate(state["step"], total)

    def save(step):
        meta = {**expect, **state, "step": step}
        save_checkpoint(checkpoint_path(checkpoints_dir, step), model=model, optimizer=optimizer, meta=meta)
        prune_checkpoints(checkpoints_dir)

    with _progress_bar(total, state["step"], progress) as bar:
        started, first_step = time.monotonic(), state["step"]
        for step in range(state["step"], total):
            features, batch_labels = next(batches)
            rate = train_config.learning_rate_at(step)
            loss, batch_accuracy = train_step(features, batch_labels, np.float32(rate))
            loss = float(loss)
            if train_config.check_nans and not math.isfinite(loss):
                raise UserError(f"the loss became {loss} at step {step + 1}; try a lower --learning_rate")
            done = step + 1
            with writers["train"].as_default(step=done):
                tf.summary.scalar("cross_entropy", loss)
                tf.summary.scalar("accuracy", float(batch_accuracy))
                tf.summary.scalar("learning_rate", rate)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{float(batch_accuracy):.2f}",
                            best_val=f"{max(state['best_accuracy'], 0):.3f}", refresh=False)
            if done % train_config.eval_step_interval == 0 or done == total:
                confusion = _confusion(model, data["validation"], len(labels))
                value = accuracy(confusion)
                with writers["validation"].as_default(step=done):
                    tf.summary.scalar("accuracy", value)
                    tf.summary.scalar("balanced_accuracy", balanced_accuracy(confusion))
                # Ties go to the later, longer-trained checkpoint.
                improved = value >= state["best_accuracy"]
                if improved:
                    state.update(best_accuracy=value, best_step=done)
                    save_checkpoint(os.path.join(run_dir, BEST_FILE), model=model,
                                    meta={**expect, "step": done, "accuracy": value})
                log.info("step %d: validation accuracy %.1f%%, balanced %.1f%% (N=%d)%s", done,
                         100 * value, 100 * balanced_accuracy(confusion), int(confusion.sum()),
                         " best so far" if improved else "")
                log.info("validation confusion matrix:\n%s", format_confusion(confusion, labels))
            if done % train_config.save_step_interval == 0 or done == total:
                save(done)
        elapsed = time.monotonic() - started
    for writer in writers.values():
        writer.flush()
    steps_run = total - first_step
    if steps_run:
        log.info("trained %d steps in %.1f s (%.1f steps/s)", steps_run, elapsed, steps_run / max(elapsed, 1e-9))
    metrics = finish(run_dir, model=model, data=data, labels=labels, state=state)
    metrics = {**metrics, "steps_run": steps_run, "train_seconds": elapsed}
    if export:
        from microkws.export import export_run

        metrics["export"] = export_run(run_dir, progress=progress)
    return metrics


def make_train_step(model, optimizer):
    """A compiled step: (features, labels, learning rate) -> (loss, batch accuracy), updating the model."""
    from microkws._tensorflow import keras, tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # No jit_compile: XLA made these small models many times slower on CPUs.
    @tf.function
    def train_step(features, labels, learning_rate):
        optimizer.learning_rate.assign(learning_rate)
        with tf.GradientTape() as tape:
            logits = model(features, training=True)
            loss = loss_fn(labels, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.equal(tf.argmax(logits, axis=-1), labels)
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

    return train_step


def finish(run_dir, *, model, data, labels, state):
    """Load the best weights, score them on the test partition, and save the model and metrics."""
    best = os.path.join(run_dir, BEST_FILE)
    if os.path.exists(best):
        load_checkpoint(best, model=model)
    confusion = _confusion(model, data["testing"], len(labels))
    wide_logits = _logits(model, data["testing_every_unknown"][0])
    wide_truth = data["testing_every_unknown"][1]
    wide = _confusion(model, data["testing_every_unknown"], len(labels), logits=wide_logits)
    metrics = {
        "labels": labels,
        "best_step": state["best_step"],
        "validation_accuracy": state["best_accuracy"],
        "test_accuracy": accuracy(confusion),
        "test_confusion": confusion.tolist(),
        "test_examples": int(confusion.sum()),
        "test_every_unknown": {
            "accuracy": accuracy(wide),
            "balanced_accuracy": balanced_accuracy(wide),
            "confusion": wide.tolist(),
            "unknown_false_accepts": unknown_false_accepts(wide, labels),
            "keyword_recall": [] if wide_logits is None else keyword_recall(_softmax(wide_logits), wide_truth, labels),
        },
    }
    _save_model(os.path.join(run_dir, MODEL_FILE), model)
    write_json(os.path.join(run_dir, METRICS_FILE), metrics)
    log.info("final test accuracy %.1f%% (N=%d), best validation step %d", 100 * metrics["test_accuracy"],
             metrics["test_examples"], state["best_step"])
    log.info("test confusion matrix:\n%s", format_confusion(confusion, labels))
    accepts = metrics["test_every_unknown"]["unknown_false_accepts"]
    if accepts["unknown_clips"]:
        log.info("unknown words taken for a wanted word: %.1f%% of all %d test clips of other words",
                 100 * accepts["rate"], accepts["unknown_clips"])
    recall = metrics["test_every_unknown"]["keyword_recall"]
    if recall:
        log.info("%s", format_keyword_recall(recall))
    return metrics


def _load_data(data_config, feature_config, augment_config, train_config, *, progress):
    index = index_dataset(data_config)
    backgrounds = load_backgrounds(
        index.background_paths, sample_rate=feature_config.sample_rate, min_length=feature_config.desired_samples
    )
    device_grid = train_config.quantize and feature_config.preprocess == "micro"

    def features_of(partition, *, every_unknown):
        clips, labels = load_partition(
            _with_every_unknown(index, partition) if every_unknown else index, partition, feature_config,
            backgrounds=backgrounds, seed=train_config.seed, progress=progress,
        )
        if not len(clips):
            return None, labels
        features = compute_features(clips, feature_config).reshape(len(clips), -1)
        return (snap_to_device_grid(features) if device_grid else features), labels

    # Validation and the wide test set hold every unknown clip of their speakers, not the
    # original's small draw: choosing the best checkpoint on a handful of unknown clips
    # picked early models that took 40 % of other words for keywords.
    partitions = {
        "validation": features_of("validation", every_unknown=True),
        "testing": features_of("testing", every_unknown=False),
        "testing_every_unknown": features_of("testing", every_unknown=True),
    }
    clips, labels = load_partition(index, "training", feature_config, backgrounds=backgrounds, progress=progress)
    if not len(clips):
        raise UserError(f"{data_config.data_dir}: the training partition is empty")
    unknown_clips = None
    if train_config.fresh_unknowns and index.unknown_pool["training"]:
        unknown_clips = load_clips(
            [e.path for e in index.unknown_pool["training"]],
            sample_rate=feature_config.sample_rate,
            length=feature_config.desired_samples,
            progress=progress,
            description="loading unknown words",
        )
    partitions["training"] = TrainingBatches(
        clips,
        labels,
        label_names=list(data_config.labels),
        unknown_clips=unknown_clips,
        backgrounds=backgrounds,
        feature_config=feature_config,
        augment_config=augment_config,
        batch_size=train_config.batch_size,
        seed=train_config.seed,
        device_grid=device_grid,
    )
    return partitions


def _with_every_unknown(index, partition):
    """`index` with `partition`'s unknown examples replaced by every unknown clip of its speakers."""
    examples = [e for e in index.partitions[partition] if e.label != UNKNOWN_LABEL] + index.unknown_pool[partition]
    return dataclasses.replace(index, partitions={**index.partitions, partition: examples})


def _logits(model, features):
    if features is None:
        return None
    return np.concatenate([np.asarray(model(features[i:i + 1000], training=False))
                           for i in range(0, len(features), 1000)])


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _confusion(model, partition, label_count, *, logits=None):
    features, labels = partition
    if features is None:
        return np.zeros((label_count, label_count), dtype=np.int64)
    if logits is None:
        logits = _logits(model, features)
    return confusion_matrix(labels, np.argmax(logits, axis=-1), label_count)


def make_optimizer(config):
    """The Keras optimizer a TrainConfig names, at its first learning rate."""
    from microkws._tensorflow import keras

    rate = config.learning_rate[0]
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    return keras.optimizers.SGD(learning_rate=rate)


def _check_run_dir(run_dir, settings):
    """Fail early if the run directory is not writable or holds a run with other settings."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w") as file:
            file.write("ok")
        os.remove(probe)
    except OSError as error:
        raise UserError(f"{run_dir}: cannot write to the train_dir ({error.strerror or error})") from None
    path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            existing = json.load(file)
        if existing != json.loads(json.dumps(settings)):
            changed = sorted(
                f"{section}.{key}"
                for section in settings
                for key in (settings[section] if isinstance(settings[section], dict) else [None])
                if _get(existing, section, key) != _get(json.loads(json.dumps(settings)), section, key)
            )
            raise UserError(
                f"{run_dir} holds a run with other settings ({', '.join(changed)}); "
                "re-run with the same flags to resume, or pass a new --train_dir"
            )


def _write_settings(run_dir, settings):
    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        write_json(os.path.join(run_dir, CONFIG_FILE), settings)
        write_text(os.path.join(run_dir, LABELS_FILE), "\n".join(settings["labels"]) + "\n")


def _get(config, section, key):
    value = config.get(section)
    return value.get(key) if key is not None and isinstance(value, dict) else value


def _save_model(path, model):
    temporary = path + ".tmp.keras"
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"{path}: cannot save the model ({error.strerror or error})") from None


def _summary_writers(directory):
    from microkws._tensorflow import tf

    return {
        name: tf.summary.create_file_writer(os.path.join(directory, name))
        for name in ("train", "validation")
    }


@contextlib.contextmanager
def _progress_bar(total, initial, enabled):
    """A bar with step, loss, accuracy, steps/s and time left; log lines print above it."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                                       desc="training", dynamic_ncols=True, smoothing=0.05) as bar:
        yield bar
