"""How many threads TensorFlow's ops get while a model trains.

Training runs two kinds of work on the same cores: TensorFlow's step and the batch producers (numpy
augmentation and the frontend, microkws.train.batches). For the original's smallest models the step gains
little from a second thread, while the producers need the core: tiny_conv's floor ran 176 against 185 steps
a second with one thread against two, and the tutorial's whole pipeline 115-120 against 104-108 (2 cores,
bench/RESULTS.md, Training). A larger model wants every core: the recommended ds_cnn's pipeline took 72-74 ms
a step with one thread against 65-67 with two. TensorFlow fixes its thread count when its runtime starts, so
only a process whose first TensorFlow work is this training (the `microkws train` command) can choose it.
"""

import logging
import os

log = logging.getLogger(__name__)

ONE_THREAD_ARCHITECTURES = frozenset({"single_fc", "tiny_conv", "tiny_embedding_conv"})
"""The original's models of under 0.4 M multiply-accumulates an example (micro_speech's input)."""


def training_op_threads(architecture, cores=None):
    """TensorFlow intra-op threads for training `architecture` on `cores` (default: this machine's)."""
    cores = cores or os.cpu_count() or 1
    return 1 if architecture in ONE_THREAD_ARCHITECTURES else cores


def use_op_threads(count):
    """Give TensorFlow's ops `count` threads; False (and nothing changed) if its runtime has started already,
    or the user chose with TF_NUM_INTRAOP_THREADS."""
    if os.environ.get("TF_NUM_INTRAOP_THREADS"):
        return False
    from microkws._tensorflow import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
    except RuntimeError:  # the runtime is up: a notebook or test that used TensorFlow before
        log.debug("TensorFlow's runtime has started; its op threads stay %d",
                  tf.config.threading.get_intra_op_parallelism_threads())
        return False
    log.debug("TensorFlow's ops get %d thread(s)", count)
    return True
