"""A damaged or crafted .tflite gives a one-line error, never a crash signal, traceback or hang (issue 13)."""

import random
import subprocess
import sys

import flatbuffers
import numpy as np
import pytest

from microkws.errors import UserError
from microkws.export.tflite_model import read_model

REFERENCE_MODEL = "micro_speech_quantized.tflite"
POSITIONS = 200
SECONDS_PER_MUTANT = 20

# Reads mutants ("1 POS" or "4 POS") from stdin and opens each as `label` and `verify` do, minus the
# crash probe: read_model's structural check, then TFLM's interpreter in this process and one invoke.
# Prints "start" before each mutant so the parent knows which one killed it.
WORKER = """
import random, sys
import numpy as np
from microkws.errors import UserError
from microkws.export.tflite_model import read_model
from microkws.device.tflm import GENEROUS_ARENA, TflmModel

original = open(sys.argv[1], "rb").read()
for line in sys.stdin:
    width, position = map(int, line.split())
    data = bytearray(original)
    draw = random.Random(position * 10 + width)
    data[position:position + width] = bytes(draw.randrange(256) for _ in range(width))
    print("start", flush=True)
    try:
        read_model(bytes(data), source="mutant.tflite")
        model = TflmModel(bytes(data), arena_size=GENEROUS_ARENA, source="mutant.tflite", probed=True)
        model.run(np.zeros((1, model.input_size), model.input_dtype))
        print("ok", flush=True)
    except UserError as error:
        print("error", str(error).replace("\\n", " "), flush=True)
"""


def mutant(original, width, position):
    data = bytearray(original)
    draw = random.Random(position * 10 + width)
    data[position:position + width] = bytes(draw.randrange(256) for _ in range(width))
    return bytes(data)


def run_mutants(model_path, jobs):
    """{job: "ok" | "error ..." | "died N" | "hang"} for each (width, position), restarting the worker after
    a mutant kills it."""
    outcomes, done = {}, 0
    while done < len(jobs):
        process = subprocess.Popen([sys.executable, "-c", WORKER, str(model_path)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = process.communicate("".join(f"{w} {p}\n" for w, p in jobs[done:]),
                                           timeout=SECONDS_PER_MUTANT * (len(jobs) - done))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        answers = [line for line in out.splitlines() if line != "start"]
        for answer in answers:
            outcomes[jobs[done]] = answer
            done += 1
        if done < len(jobs):  # the worker stopped in the middle of jobs[done]
            outcomes[jobs[done]] = "hang" if process.returncode == -9 else f"died {process.returncode} {err[-300:]}"
            done += 1
    return outcomes


def packed(model):
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def parsed(data):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


@pytest.fixture(scope="module")
def reference(testvectors):
    return (testvectors / REFERENCE_MODEL).read_bytes()


@pytest.fixture(scope="module")
def rewired(reference):
    """The reference model with its convolution reading the fully-connected weights ([4, 4000]) instead of
    the features: every index is in range, but TFLM's kernel reads past the tensor and dies (SIGSEGV)."""
    model = parsed(reference)
    conv = model.subgraphs[0].operators[1]
    conv.inputs = np.array([7, *conv.inputs[1:]], dtype=np.int32)
    return packed(model)


def test_rewired_op_passes_the_structural_check_but_is_caught_in_a_worker(rewired):
    from microkws.device.tflm import check_does_not_crash

    read_model(rewired)  # structurally sound: only running it shows the problem
    with pytest.raises(UserError, match=r"rewired.tflite: TFLite Micro crashed on this model .*SIG"):
        check_does_not_crash(rewired, source="rewired.tflite")


@pytest.mark.parametrize("command", ["verify", "label"])
def test_commands_on_a_crashing_model_exit_2_with_one_line(command, rewired, tmp_path, sample_dir):
    path = tmp_path / "model.tflite"
    path.write_bytes(rewired)
    argv = [str(path)] if command == "verify" else ["--labels", "_silence_,_unknown_,yes,no", str(path),
                                                     str(next((sample_dir / "yes").glob("*.wav")))]
    result = subprocess.run([sys.executable, "-m", "microkws", command, *argv], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("microkws")]
    assert lines == [f"microkws {command}: error: {path}: TFLite Micro crashed on this model (the worker process "
                     "died: SIGSEGV); the file is damaged or was not made for TFLite Micro"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], "damaged TFLite model"),
    (lambda data: b"\xff\xff\xff\x7f" + data[4:], "damaged TFLite model"),
    (lambda data: data[:12], "damaged TFLite model"),
])
def test_truncated_or_misrooted_files_are_damaged(reference, damage, message):
    with pytest.raises(UserError, match=f"model: {message}"):
        read_model(damage(reference))


@pytest.mark.parametrize("edit, message", [
    (lambda g, m: setattr(g.operators[2], "inputs", np.array([2, 70, 1])), "op 2 inputs name tensor 70 of 10"),
    (lambda g, m: setattr(g.operators[0], "opcodeIndex", 9), "op 0 has operator code 9"),
    (lambda g, m: setattr(g.tensors[7], "buffer", 99), "tensor 7 names buffer 99"),
    (lambda g, m: setattr(m.buffers[g.tensors[7].buffer], "data", np.zeros(100, np.uint8)),
     "tensor 7 needs 16000 bytes of int8 data, its buffer holds 100"),
    (lambda g, m: setattr(g.tensors[4], "shape", np.array([1, -49, 40, 1])), "negative dimension"),
    (lambda g, m: (setattr(g.tensors[2].quantization, "scale", [0.1, 0.2]),
                   setattr(g.tensors[2].quantization, "zeroPoint", [0, 0])), "2 per-channel scales"),
    (lambda g, m: setattr(g, "outputs", np.array([12])), "outputs name tensor 12 of 10"),
    (lambda g, m: setattr(m, "version", 40707), "schema version 40707; TFLite models are version 3"),
])
def test_broken_references_are_named(reference, edit, message):
    model = parsed(reference)
    edit(model.subgraphs[0], model)
    with pytest.raises(UserError, match=message):
        read_model(packed(model), source="crafted.tflite")


def test_a_model_tflite_refuses_is_one_line_naming_the_file():
    # verify's bit-equality check and `evaluate --runtime tflite` open models with tf.lite's interpreter,
    # whose C++ wrapper raises ValueError / RuntimeError for what it refuses.
    from microkws.export.interpreters import float_interpreter, optimized_interpreter, reference_interpreter

    for make in (reference_interpreter, optimized_interpreter, float_interpreter):
        with pytest.raises(UserError, match=r"^crafted.tflite: TFLite's interpreter cannot run it \(.+\)$"):
            make(b"\0" * 64, source="crafted.tflite")


def test_every_mutant_of_a_real_model_is_handled(reference, testvectors):
    """Single-byte and 4-byte changes at 200 positions: each loads and runs, or is a UserError from the
    structural check or TFLM; one that kills the in-process interpreter must be refused by the worker probe
    that every command runs first (so the user sees a one-line error there too)."""
    from microkws.device.tflm import check_does_not_crash

    positions = random.Random(0).sample(range(len(reference) - 4), POSITIONS)
    jobs = [(width, position) for position in positions for width in (1, 4)]
    outcomes = run_mutants(testvectors / REFERENCE_MODEL, jobs)
    unhandled = {job: outcome for job, outcome in outcomes.items() if outcome.split()[0] not in ("ok", "error")}
    assert all(not outcome.startswith(("hang", "died 1 ")) for outcome in unhandled.values()), unhandled
    for width, position in unhandled:
        with pytest.raises(UserError, match="crashed"):
            check_does_not_crash(mutant(reference, width, position), source="mutant.tflite")
    assert sum(outcome.startswith("error") for outcome in outcomes.values()) > POSITIONS // 10
