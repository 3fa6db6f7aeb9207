"""Keeping TensorFlow's and TFLM's chatter out of a command's output.

The converter prints to stdout (Keras' "Saved artifact at ..."), logs INFO
lines ("Assets written to ..."), warns, and its C++ side writes straight to
file descriptor 2 ("fully_quantize: 0, inference_type: 6, ..."). None of it
is news to the user; all of it is kept and logged at DEBUG (`-v`).
"""

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet(what="tensorflow"):
    """Silence stdout, Python warnings, the tensorflow logger and native stderr inside the block."""
    stdout = io.StringIO()
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.WARNING)
    try:
        with native_stderr() as native, warnings.catch_warnings(), contextlib.redirect_stdout(stdout):
            warnings.simplefilter("ignore")
            try:
                yield
            finally:
                chatter = stdout.getvalue().splitlines() + native()
                if chatter:
                    log.debug("%s output:\n%s", what, "\n".join(chatter))
    finally:
        tf_logger.setLevel(level)


@contextlib.contextmanager
def native_stderr():
    """Send what C/C++ code writes to file descriptor 2 to a temporary file.

    Yields a function returning the lines written so far (TFLM's error
    messages, for one). Without a real stderr (some notebooks) nothing is
    captured and the function returns [].
    """
    with tempfile.TemporaryFile(mode="w+b") as captured:

        def lines():
            captured.seek(0)
            return captured.read().decode("utf-8", "replace").splitlines()

        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield lambda: []
            return
        os.dup2(captured.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
