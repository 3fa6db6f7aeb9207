"""TensorFlow Lite Micro's own interpreter and kernels (the `tflite-micro` package), as the device runs them.

`TflmModel` runs a one-input, one-output model row by row (many rows on every core: the kernels are
single-threaded, and an hour of stream is 180,000 windows); `smallest_arena` finds the smallest tensor
arena it loads and runs with. The Python runtime can crash, not raise, when an arena is too small for
its own bookkeeping, so each size is tried in a worker process. TFLM's kernels also trust the model:
an op wired to a tensor of the wrong shape can kill the process (SIGSEGV, SIGFPE) even after the
structural check of `read_model`, so a model from the user is first loaded and invoked once in a
worker process, and a crash there becomes a one-line error.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np

from microkws._quiet import native_stderr
from microkws.errors import UserError

GENEROUS_ARENA = 16 * 1024 * 1024
"""Arena for the first load: big enough for any keyword model, so a failure is not about memory."""
MAX_ARENA = 64 * 1024 * 1024
"""The largest arena `smallest_arena` tries."""
ROWS_PER_WORKER = 256
"""`run` shares rows with worker processes only when each gets at least this many: a worker takes about
0.3 s to start, and a row 0.1-4 ms."""


class TflmModel:
    """A one-input, one-output model in the tflite-micro runtime (TFLM's C++ interpreter and kernels)."""

    def __init__(self, model_bytes, *, arena_size, source="model", probed=False, workers=1):
        """`probed`: the model already loaded and ran in a worker process (else it is tried there first).
        `workers`: processes `run` may use for a long batch (this one included); each row's outputs are
        the same however the rows are shared."""
        from tflite_micro.python.tflite_micro import runtime

        if not probed:
            check_does_not_crash(model_bytes, source=source)
        with native_stderr() as messages:
            try:
                self._interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))
            except RuntimeError as error:
                detail = "; ".join(line for line in messages() if line) or str(error)
                raise UserError(f"{source}: TFLite Micro cannot run this model ({detail})") from None
        self.arena_size = int(arena_size)
        self.source, self.workers = source, max(1, int(workers))
        self._model_bytes, self._pool = bytes(model_bytes), None
        self._input = self._interpreter.get_input_details(0)
        self._output = self._interpreter.get_output_details(0)
        self.input_size = int(np.prod(self._input["shape"]))
        self.input_dtype = np.dtype(self._input["dtype"])

    def run(self, inputs):
        """Outputs [n, outputs] for integer inputs [n, input values], one invoke each."""
        inputs = np.asarray(inputs)
        parts = min(self.workers, len(inputs) // ROWS_PER_WORKER)
        if parts < 2:
            return self._run_here(inputs)
        chunks = np.array_split(inputs, parts)
        workers = self._start_workers(parts - 1)
        for worker, chunk in zip(workers, chunks[1:]):
            worker.send(chunk)
        first = self._run_here(chunks[0])
        return np.concatenate([first, *(worker.receive() for worker in workers)])

    def _start_workers(self, count):
        if self._pool is None:
            self._pool = []
            weakref.finalize(self, _stop_all, self._pool)
        while len(self._pool) < count:
            self._pool.append(_RunWorker(self._model_bytes, self.arena_size, self.source))
        return self._pool[:count]

    def _run_here(self, inputs):
        shape, dtype = self._input["shape"], self._input["dtype"]
        outputs = []
        for row in np.asarray(inputs):
            self._interpreter.set_input(row.reshape(shape).astype(dtype), 0)
            self._interpreter.invoke()
            outputs.append(np.asarray(self._interpreter.get_output(0)).reshape(-1).copy())
        return np.stack(outputs) if outputs else np.zeros((0, int(np.prod(self._output["shape"]))))


def smallest_arena(model_bytes, *, limit=MAX_ARENA):
    """The smallest arena_size (bytes) with which TFLM loads and invokes the model.

    Each size is tried in a worker process: the Python runtime can crash,
    not raise, when the arena is too small for its own bookkeeping, and the
    worker is restarted when it does.
    """
    with _ArenaProbe(model_bytes) as probe:
        high = 4096
        while not probe.works(high):
            if high >= limit:
                raise UserError(f"TFLite Micro cannot run the model with any arena up to {limit} bytes")
            high *= 2
        low = 0  # invariant: `low` fails, `high` works
        while high - low > 1:
            middle = (low + high) // 2
            if probe.works(middle):
                high = middle
            else:
                low = middle
    return high


def check_does_not_crash(model_bytes, *, source="model"):
    """Load and invoke the model once in a worker process; a UserError if that kills the worker."""
    with _ArenaProbe(model_bytes) as probe:
        if probe.answer(GENEROUS_ARENA) is None:
            raise UserError(f"{source}: TFLite Micro crashed on this model (the worker process died: "
                            f"{probe.death}); the file is damaged or was not made for TFLite Micro")


class _ArenaProbe:
    """A worker process that answers "does arena size N work?" for one model.

    The model travels over the worker's stdin (one line of hex before the sizes), so nothing is left
    on disk when either side is killed.
    """

    def __init__(self, model_bytes):
        self._model_bytes = bytes(model_bytes)
        self._process = None
        self.death = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop()

    def works(self, size):
        return self.answer(size) == "ok"

    def answer(self, size):
        """"ok" or "no" from the worker, or None when the runtime crashed it (see `death`)."""
        if self._process is None:
            self._start()
        try:
            self._process.stdin.write(f"{int(size)}\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline().strip()
        except OSError:  # the worker died before it read the size
            answer = ""
        if not answer:  # the runtime crashed on this size
            self._stop()
            return None
        return answer

    def _start(self):
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from microkws.device.tflm import _arena_worker; _arena_worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_worker_env(),
        )
        self._process.stdin.write(self._model_bytes.hex() + "\n")

    def _stop(self):
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            code = self._process.wait()
            self.death = _signal_name(-code) if code < 0 else f"exit status {code}"
            self._process = None


def _arena_worker():
    """Worker of `_ArenaProbe`: reads the model, then arena sizes from stdin; answers ok / no per size."""
    model_bytes = bytes.fromhex(sys.stdin.readline().strip())
    for line in sys.stdin:
        try:
            model = TflmModel(model_bytes, arena_size=int(line), probed=True)
            model.run(np.zeros((1, model.input_size), model.input_dtype))
            answer = "ok"
        except (RuntimeError, UserError):
            answer = "no"
        print(answer, flush=True)


class _RunWorker:
    """A worker process running a model for `TflmModel.run`: like `_ArenaProbe`, a `python -c` child fed
    over its stdin (the model, then arrays: a JSON header line and the raw bytes), so a user's script is never imported again
    in it (as multiprocessing's spawn would) and nothing is left on disk."""

    def __init__(self, model_bytes, arena_size, source):
        self.source = source
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from microkws.device.tflm import _run_worker; _run_worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_worker_env())
        _write_array(self._process.stdin, np.array([arena_size], np.int64))
        _write_array(self._process.stdin, np.frombuffer(bytes(model_bytes), np.uint8))

    def send(self, inputs):
        try:
            _write_array(self._process.stdin, inputs)
            self._process.stdin.flush()
        except OSError:
            pass  # it died: receive() says so

    def receive(self):
        try:
            return _read_array(self._process.stdout)
        except (OSError, ValueError):
            raise UserError(f"{self.source}: a TFLite Micro worker process died while running the model") from None

    def stop(self):
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.wait()


def _stop_all(workers):
    for worker in workers:
        worker.stop()


def _run_worker():
    """Worker of `_RunWorker`: the arena size and the model, then input arrays; answers each with outputs."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    arena_size = int(_read_array(stdin)[0])
    model = TflmModel(_read_array(stdin).tobytes(), arena_size=arena_size, probed=True)
    while stdin.peek(1):
        _write_array(stdout, model.run(_read_array(stdin)))
        stdout.flush()


def _write_array(stream, array):
    array = np.ascontiguousarray(array)
    stream.write(json.dumps({"dtype": array.dtype.str, "shape": array.shape}).encode() + b"\n")
    stream.write(array.tobytes())


def _read_array(stream):
    """The array `_write_array` wrote; ValueError when the stream ends first."""
    header = stream.readline()
    if not header:
        raise ValueError("the stream ended")
    header = json.loads(header)
    dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
    size = dtype.itemsize * int(np.prod(shape))
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("the stream ended inside an array")
    return np.frombuffer(data, dtype).reshape(shape)


def _worker_env():
    package_root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
