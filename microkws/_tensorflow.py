"""TensorFlow and Keras for the whole package, imported once, without TensorFlow's native start-up lines.

Importing TensorFlow writes to file descriptor 2 from C++, before any Python logging exists: absl's
"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR" and, on CPUs
where oneDNN is on, "I0000 ... port.cc:153] oneDNN custom operations are on ...". TF_CPP_MIN_LOG_LEVEL
no longer silences these, and they would stand before every result and every one-line error a user
sees. So every module of microkws takes `tf` and `keras` from here; the lines are logged at DEBUG
(`microkws -v` shows them). If the import fails they are printed, since they may say why.
"""

import logging
import os
import sys

from microkws._quiet import native_stderr

# TensorFlow's own runtime INFO and WARNING lines, after start-up; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's CPU kernels, which TensorFlow turns on by itself only on some Intel CPUs. On the AMD EPYC
# cores this project runs on they make tiny_conv's training step 3x faster (its first convolution's
# weight gradient 6.5x; bench/RESULTS.md, Training); results differ from Eigen's only in float
# rounding. A user's TF_ENABLE_ONEDNN_OPTS=0 still turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

_startup_lines = []
try:
    with native_stderr() as _captured:
        try:
            import tensorflow as tf
            import keras
        finally:
            _startup_lines = _captured()
except BaseException:
    sys.stderr.write("".join(line + "\n" for line in _startup_lines))
    raise

if _startup_lines:
    logging.getLogger(__name__).debug("TensorFlow start-up output:\n%s", "\n".join(_startup_lines))

__all__ = ["keras", "tf"]
