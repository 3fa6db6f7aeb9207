"""The training loop: the original train.py's schedule, resumable, keeping the best model.

`train(run_dir, ...)` writes the training half of a run directory (see microkws.train.rundir):
settings, checkpoints, the best weights, model.keras and metrics.json. It does not export:
microkws.pipeline chains train -> export -> verify. Cross-cutting work sits beside the loop, not in
it: `_Validation` scores and keeps the best checkpoint, `_Checkpoints` saves and prunes,
`_Summaries` writes TensorBoard scalars, and a diverged loss always stops the run.
"""

import concurrent.futures
import contextlib
import logging
import os
import time

import numpy as np

from microkws._tensorflow import keras, tf
from microkws.errors import UserError
from microkws.metrics import (accuracy, balanced_accuracy, confusion_matrix, format_confusion, format_keyword_recall,
                              keyword_recall, softmax, unknown_false_accepts)
from microkws.models import build_model
from microkws.models.keras_model import model_outputs, save_keras_model
from microkws.train import rundir
from microkws.train.checkpoint import (UnreadableCheckpoint, checkpoint_path, load_checkpoint, load_newest_checkpoint,
                                      prune_checkpoints, save_checkpoint)
from microkws.train.data import load_training_data
from microkws.train.steps import make_optimizer, make_train_steps

log = logging.getLogger(__name__)


def train(run_dir, *, data_config, feature_config=None, augment_config=None, train_config=None,
          start_checkpoint=None, summaries_dir=None, progress=True, on_validation=None, timings=None,
          data_cache=None):
    """Train a model into `run_dir`; resumes if `run_dir` holds checkpoints of the same settings.

    Configs left as None take their defaults (the micro_speech recipe's features, the original's
    augmentation and schedule). Returns the final metrics dict (also written to metrics.json).
    `on_validation(step, scores)`, if given, is called after each validation with its scores
    (validation_scores' dict); an exception it raises stops training (a search prunes
    unpromising trials this way). `timings`, if given, is a dict filled as training goes with the seconds
    spent on each part: load_data, steps (the training steps alone), validation, checkpoints, finish (so
    a run stopped by on_validation still says where its time went). The returned metrics hold the same
    figures under "seconds". `data_cache` (train.data.DataCache): reuse the clips an earlier run in this
    process loaded with the same data settings (a search's trials).
    """
    timings = {} if timings is None else timings
    config = rundir.RunConfig(data=data_config, **{name: value for name, value in (
        ("features", feature_config), ("augment", augment_config), ("train", train_config)) if value is not None})
    rundir.check_run_dir(run_dir, config)
    started = time.monotonic()
    data = load_training_data(config, progress=progress, cache=data_cache)
    timings["load_data"] = time.monotonic() - started
    # Written once the data is known to be usable, so a run that failed on bad
    # data does not pin its settings to the run directory.
    rundir.write_run_config(run_dir, config)
    checkpoints_dir = os.path.join(run_dir, rundir.CHECKPOINTS_DIR)
    os.makedirs(checkpoints_dir, exist_ok=True)
    settings = config.train
    keras.utils.set_random_seed(settings.seed)
    log.info("training on %s", _device_name())
    model = build_model(settings.model_architecture, input_shape=config.features.shape,
                        label_count=len(config.labels), dropout_rate=settings.dropout_rate,
                        config=settings.model_settings())
    optimizer = make_optimizer(settings)
    optimizer.build(model.trainable_variables)
    identity = {"architecture": settings.model_architecture, "labels": list(config.labels),
                "input_shape": list(config.features.shape)}
    state = {"step": 0, "best_score": -1.0, "best_step": 0}
    resume_from, meta = load_newest_checkpoint(checkpoints_dir, model=model, optimizer=optimizer, expect=identity)
    if resume_from:
        state.update({k: meta[k] for k in state if k in meta})
        log.info("resuming from %s at step %d", resume_from, state["step"])
    elif start_checkpoint:
        load_checkpoint(start_checkpoint, model=model, optimizer=optimizer, expect=identity)
        log.info("starting from the weights of %s", start_checkpoint)

    first_step = state["step"]
    summaries = _Summaries(summaries_dir or os.path.join(run_dir, rundir.LOGS_DIR))
    validation = _Timed(_Validation(run_dir, model, data["validation"], config.labels, identity, state, summaries,
                                    metric=settings.checkpoint_metric, keep_best=settings.keep_best,
                                    on_validation=on_validation),
                        timings, "validation")
    checkpoints = _Timed(_Checkpoints(checkpoints_dir, model, optimizer, identity, state), timings, "checkpoints")
    started = time.monotonic()
    try:
        _run_steps(model, optimizer, data["training"], settings, state, progress=progress,
                   on_steps=summaries.train, every=[(settings.eval_step_interval, validation),
                                                    (settings.save_step_interval, checkpoints)])
    finally:  # also when on_validation stops the run
        elapsed = time.monotonic() - started
        timings["steps"] = elapsed - timings.get("validation", 0.0) - timings.get("checkpoints", 0.0)
    summaries.flush()
    steps_run = settings.total_steps - first_step
    if steps_run:
        log.info("trained %d steps in %.1f s (%.1f steps/s)", steps_run, elapsed, steps_run / max(elapsed, 1e-9))
    started = time.monotonic()
    metrics = finish(run_dir, model=model, data=data, labels=list(config.labels),
                     state={**state, "step": settings.total_steps},
                     checkpoint_metric=settings.checkpoint_metric, keep_best=settings.keep_best)
    timings["finish"] = time.monotonic() - started
    return {**metrics, "steps_run": steps_run, "train_seconds": elapsed, "seconds": dict(timings)}


def _device_name():
    """Where TensorFlow places the steps: its first GPU when it sees one (tensorflow[and-cuda]), else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return f"{gpus[0].name} (TensorFlow sees {len(gpus)} GPU{'s' * (len(gpus) > 1)})" if gpus else \
        f"the CPU ({os.cpu_count()} cores; no GPU visible to TensorFlow)"


class _Timed:
    """A loop callback that adds the seconds it takes to timings[name]."""

    def __init__(self, callback, timings, name):
        self.callback, self.timings, self.name = callback, timings, name

    def __call__(self, step):
        started = time.monotonic()
        try:
            self.callback(step)
        finally:
            self.timings[self.name] = self.timings.get(self.name, 0.0) + time.monotonic() - started


STEPS_PER_CALL = 20
"""Training steps per compiled call (make_train_steps); chunks also end at every validation and
checkpoint, so callbacks see the same steps as with one call per step."""


def _run_steps(model, optimizer, batches, settings, state, *, progress, on_steps, every):
    """Steps state["step"]..total in chunks of up to STEPS_PER_CALL; after each chunk, the callbacks
    of `every` ((interval, callback) pairs, in order) whose interval divides its last step, and all of
    them after the last step."""
    train_steps = make_train_steps(model, optimizer, quantize=settings.quantize,
                                   weight_scales=settings.weight_scales, label_smoothing=settings.label_smoothing)
    total = settings.total_steps
    intervals = [interval for interval, _ in every]
    with contextlib.closing(batches.iterate(state["step"], total)) as stream, \
            _chunks_ahead(stream, _chunk_sizes(state["step"], total, intervals)) as chunks, \
            _progress_bar(total, state["step"], progress) as bar:
        step = state["step"]
        for count, (features, labels) in chunks:
            rates = np.array([settings.learning_rate_at(s) for s in range(step, step + count)], np.float32)
            losses, accuracies = (t.numpy() for t in train_steps(features, labels, rates))
            _check_finite(losses, step)
            on_steps(step + 1, losses=losses, accuracies=accuracies, learning_rates=rates)
            step += count
            bar.update(count)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accuracies[-1]:.2f}",
                            best_val=f"{max(state['best_score'], 0):.3f}", refresh=False)
            for interval, callback in every:
                if step % interval == 0 or step == total:
                    callback(step)


@contextlib.contextmanager
def _chunks_ahead(stream, sizes):
    """An iterator of (size, (features, labels)) for each of `sizes`: that many consecutive batches of
    `stream`, stacked into tensors by a thread while the step before runs.

    Why a thread: stacking a chunk and handing it to TensorFlow copies it twice (16 MB for tiny_conv's
    20 steps); on the training thread that kept the step waiting about 0.4 ms a step. The stream is
    never read by two threads at once, and its last read has finished when this exits.
    """
    def stacked(count):
        features, labels = (np.stack(part) for part in zip(*(next(stream) for _ in range(count))))
        return tf.convert_to_tensor(features), tf.convert_to_tensor(labels)

    def chunks(executor):
        counts = list(sizes)
        pending = executor.submit(stacked, counts[0]) if counts else None
        for index, count in enumerate(counts):
            chunk = pending.result()
            pending = executor.submit(stacked, counts[index + 1]) if index + 1 < len(counts) else None
            yield count, chunk

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="microkws-chunks") as executor:
        yield chunks(executor)  # leaving waits for a chunk in the making, so the stream can close


def _chunk_sizes(step, total, intervals):
    """The sizes of the chunks from `step` to `total`."""
    while step < total:
        count = _chunk_size(step, total, intervals)
        yield count
        step += count


def _chunk_size(step, total, intervals):
    """Steps in the chunk that starts after `step`: it ends at the next multiple of any interval."""
    return min(STEPS_PER_CALL, total - step, *(interval - step % interval for interval in intervals))


def _check_finite(losses, first_step):
    """A diverged run must never reach export: stop at the first step whose loss is not finite."""
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise UserError(f"the loss became {losses[bad[0]]} at step {first_step + bad[0] + 1}; "
                        "try a lower --learning_rate")


class _Validation:
    """Scores the model on every validation clip, logs the scores and keeps the best weights in best.npz
    (best by `metric`, one of CHECKPOINT_METRICS; with keep_best False, the latest: validation runs after
    the last step too, so that is the last step's)."""

    def __init__(self, run_dir, model, partition, labels, identity, state, summaries, *, metric, keep_best=True,
                 on_validation=None):
        self.path = os.path.join(run_dir, rundir.BEST_FILE)
        self.keep_best, self.on_validation = keep_best, on_validation
        self.model, self.partition, self.labels = model, partition, list(labels)
        self.identity, self.state, self.summaries, self.metric = identity, state, summaries, metric

    def __call__(self, step):
        scores, confusion = validation_scores(self.model, self.partition, self.labels)
        value, balanced = scores["accuracy"], scores["balanced_accuracy"]
        self.summaries.validation(step, **scores)
        # Ties go to the later, longer-trained checkpoint.
        improved = scores[self.metric] >= self.state["best_score"] or not self.keep_best
        if improved:
            self.state.update(best_score=scores[self.metric], best_step=step)
            save_checkpoint(self.path, model=self.model, meta={**self.identity, "step": step, **scores})
        log.info("step %d: validation accuracy %.1f%%, balanced %.1f%%, keyword recall at 1%% / 5%% false "
                 "accepts %.1f%% / %.1f%% (N=%d)%s", step, 100 * value, 100 * balanced,
                 100 * scores["keyword_recall_at_1"], 100 * scores["keyword_recall_at_5"],
                 int(confusion.sum()), (" best so far" if self.keep_best else " kept") if improved else "")
        log.info("validation confusion matrix:\n%s", format_confusion(confusion, self.labels))
        if self.on_validation is not None:
            self.on_validation(step, scores)


def validation_scores(model, partition, labels):
    """({"accuracy", "balanced_accuracy", "keyword_recall_at_1", "keyword_recall_at_5"}, confusion) of
    `model` on a partition (features, labels). keyword_recall_at_R: the share of keyword clips detected as
    their word when the threshold lets R % of the unknown clips fire (0 without keyword or unknown clips)."""
    report = _every_unknown_report(model, partition, labels)
    recall = {row["false_accept_rate"]: row["recall"] for row in report["keyword_recall"]}
    return {"accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"],
            "keyword_recall_at_1": recall.get(0.01, 0.0),
            "keyword_recall_at_5": recall.get(0.05, 0.0)}, np.asarray(report["confusion"])


class _Checkpoints:
    """Saves the model, optimizer and loop state, keeping the newest few checkpoints."""

    def __init__(self, directory, model, optimizer, identity, state):
        self.directory, self.model, self.optimizer = directory, model, optimizer
        self.identity, self.state = identity, state

    def __call__(self, step):
        meta = {**self.identity, **self.state, "step": step}
        save_checkpoint(checkpoint_path(self.directory, step), model=self.model, optimizer=self.optimizer, meta=meta)
        prune_checkpoints(self.directory)


class _Summaries:
    """TensorBoard scalars: train/ every step, validation/ at each validation.

    A chunk's training scalars are written by one compiled call: written one eager op at a time they
    cost about 1 ms a step, a sixth of tiny_conv's step."""

    TRAIN_TAGS = ("cross_entropy", "accuracy", "learning_rate")

    def __init__(self, directory):
        self.writers = {name: tf.summary.create_file_writer(os.path.join(directory, name))
                        for name in ("train", "validation")}
        writer = self.writers["train"]
        # tf.summary.scalar inside the loop would prefix its tags with the loop's name scope ("while/");
        # tf.summary.write with the scalar plugin's metadata writes exactly what tf.summary.scalar does.
        from tensorboard.plugins.scalar.metadata import create_summary_metadata

        metadata = create_summary_metadata(display_name=None, description=None).SerializeToString()

        @tf.function(reduce_retracing=True)
        def write_train(first_step, series):
            with writer.as_default():
                for i in tf.range(tf.shape(series)[1]):
                    for row, tag in enumerate(self.TRAIN_TAGS):
                        tf.summary.write(tag, series[row, i], step=first_step + tf.cast(i, tf.int64),
                                         metadata=metadata)

        self._write_train = write_train

    def train(self, first_step, *, losses, accuracies, learning_rates):
        """Scalars of steps first_step, first_step + 1, ... (one value of each series per step)."""
        series = np.stack([losses, accuracies, learning_rates]).astype(np.float32)
        self._write_train(np.int64(first_step), series)

    def validation(self, step, **scores):
        with self.writers["validation"].as_default(step=step):
            for name, value in scores.items():
                tf.summary.scalar(name, value)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()


def finish(run_dir, *, model, data, labels, state, checkpoint_metric, keep_best=True):
    """Load the kept weights (best.npz), score them on the test partition, and save the model and metrics."""
    state = _load_best(run_dir, model, state)
    confusion = _confusion(model, data["testing"], len(labels))
    metrics = {
        "labels": labels,
        "best_step": state["best_step"],
        "checkpoint_metric": checkpoint_metric,
        "keep_best": keep_best,
        "validation_score": state["best_score"],
        "test_accuracy": accuracy(confusion),
        "test_confusion": confusion.tolist(),
        "test_examples": int(confusion.sum()),
        "test_every_unknown": _every_unknown_report(model, data["testing_every_unknown"], labels),
        # The same figures on the validation speakers: what a recipe may be tuned on (the test
        # speakers are for the final figure only).
        "validation_every_unknown": _every_unknown_report(model, data["validation"], labels),
    }
    save_keras_model(os.path.join(run_dir, rundir.MODEL_FILE), model)
    rundir.write_metrics(run_dir, metrics)
    _log_metrics(metrics, confusion, labels)
    return metrics


def _log_metrics(metrics, confusion, labels):
    log.info("final test accuracy %.1f%% (N=%d), best validation step %d", 100 * metrics["test_accuracy"],
             metrics["test_examples"], metrics["best_step"])
    log.info("test confusion matrix:\n%s", format_confusion(confusion, labels))
    accepts = metrics["test_every_unknown"]["unknown_false_accepts"]
    if accepts["unknown_clips"]:
        log.info("unknown words taken for a wanted word: %.1f%% of all %d test clips of other words",
                 100 * accepts["rate"], accepts["unknown_clips"])
    recall = metrics["test_every_unknown"]["keyword_recall"]
    if recall:
        log.info("%s", format_keyword_recall(recall))


def _load_best(run_dir, model, state):
    """Put the best validation weights (best.npz) into `model`; returns the state to report. Without
    best.npz (deleted by hand) the model keeps the last weights and the report says so; a best.npz
    that cannot be read is an error rather than a silent fall-back, since the metrics would claim a
    checkpoint that is not the one saved."""
    best = os.path.join(run_dir, rundir.BEST_FILE)
    if os.path.exists(best):
        try:
            load_checkpoint(best, model=model)
        except UnreadableCheckpoint as error:
            raise UserError(f"{error}; the best weights are lost: delete it and re-run the same command to "
                            "finish with the last weights, or train again in a new --train_dir") from None
        return state
    if state["best_step"] != state["step"]:
        log.warning("%s is missing: using the last weights (step %d), not the best validation step %d",
                    best, state["step"], state["best_step"])
    return {**state, "best_step": state["step"]}


def _every_unknown_report(model, partition, labels):
    """Accuracy, balanced accuracy, confusion, other words taken and keyword recall at fixed false-accept
    rates, over a partition holding every clip of other words."""
    features, truth = partition
    logits = None if features is None else model_outputs(model, features)
    confusion = _confusion(model, partition, len(labels), logits=logits)
    return {
        "accuracy": accuracy(confusion),
        "balanced_accuracy": balanced_accuracy(confusion),
        "confusion": confusion.tolist(),
        "unknown_false_accepts": unknown_false_accepts(confusion, labels),
        "keyword_recall": [] if logits is None else keyword_recall(softmax(logits), truth, labels),
    }


def _confusion(model, partition, label_count, *, logits=None):
    features, labels = partition
    if features is None:
        return np.zeros((label_count, label_count), dtype=np.int64)
    if logits is None:
        logits = model_outputs(model, features)
    return confusion_matrix(labels, np.argmax(logits, axis=-1), label_count)


@contextlib.contextmanager
def _progress_bar(total, initial, enabled):
    """A bar with step, loss, accuracy, steps/s and time left; log lines print above it."""
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(), tqdm(total=total, initial=initial, disable=not enabled, unit="step",
                                       desc="training", dynamic_ncols=True, smoothing=0.05) as bar:
        yield bar
