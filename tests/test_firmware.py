"""model_settings.h: generated from the device report, and it compiles and registers exactly the model's ops.

The header is compiled with g++ against stand-in declarations of the two TFLM names it uses (TfLiteStatus
and MicroMutableOpResolver<N>), whose Add methods are TFLM's own names and which, like TFLM's, refuse an
op past N and an op added twice."""

import json
import shutil
import subprocess

import pytest

from microkws.device.firmware import ARENA_MARGIN_BYTES, SETTINGS_FILE, model_settings_text, op_method
from microkws.device.report import update_device_report

TFLM_ADD_METHODS = (
    "AddAbs AddAdd AddAveragePool2D AddBatchToSpaceNd AddConcatenation AddConv2D AddDepthwiseConv2D "
    "AddDequantize AddExpandDims AddFullyConnected AddLogistic AddMaxPool2D AddMaximum AddMean AddMinimum AddMul "
    "AddPack AddPad AddPadV2 AddQuantize AddRelu AddRelu6 AddReshape AddShape AddSoftmax AddSqueeze "
    "AddStridedSlice AddSub AddSvdf AddTanh AddTranspose AddUnpack"
).split()
"""Registration methods of TFLM's MicroMutableOpResolver (micro_mutable_op_resolver.h), a subset."""

STAND_IN = """#pragma once
#include <cstdio>
#include <cstring>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int registered = 0;
  const char* names[tOpCount] = {};
%s
 private:
  TfLiteStatus Add(const char* name) {
    for (unsigned int i = 0; i < registered; ++i)
      if (std::strcmp(names[i], name) == 0) return kTfLiteError;  // TFLM refuses an op registered twice
    if (registered >= tOpCount) return kTfLiteError;  // and one past the resolver's size
    names[registered++] = name;
    std::printf("op %%s\\n", name);
    return kTfLiteOk;
  }
};
}  // namespace tflite
""" % "\n".join(f'  TfLiteStatus {name}() {{ return Add("{name}"); }}' for name in TFLM_ADD_METHODS)

MAIN = """#include "model_settings.h"
#include <cstdio>
int main() {
  ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return 3;
  std::printf("registered %u\\n", resolver.registered);
  std::printf("arena %d\\nframes %d\\nbins %d\\nelements %d\\nrate %d\\nstride %d\\nthreshold %d\\nwindow %d\\n",
              kTensorArenaSize, kFeatureCount, kFeatureSize, kFeatureElementCount, kAudioSampleFrequency,
              kFeatureStrideMs, kDetectionThreshold, kAverageWindowDurationMs);
  for (int i = 0; i < kCategoryCount; ++i) std::printf("label [%s]\\n", kCategoryLabels[i]);
  return 0;
}
"""


def compile_and_run(header_text, folder):
    """Compile MAIN against `header_text` and the stand-in; returns its output lines."""
    include = folder / "include" / "tensorflow" / "lite" / "micro"
    include.mkdir(parents=True)
    (include / "micro_mutable_op_resolver.h").write_text(STAND_IN)
    (folder / SETTINGS_FILE).write_text(header_text)
    (folder / "main.cc").write_text(MAIN)
    build = subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-I", str(folder / "include"), "-I",
                            str(folder), str(folder / "main.cc"), "-o", str(folder / "main")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    result = subprocess.run([str(folder / "main")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    return result.stdout.splitlines()


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.fixture(scope="module")
def verified(tmp_path_factory, testvectors):
    """TFLM's micro_speech model verified by `microkws verify`: its device report and model_settings.h."""
    folder = tmp_path_factory.mktemp("verified")
    model = folder / "micro_speech.tflite"
    shutil.copy(testvectors / "micro_speech_quantized.tflite", model)
    from microkws.cli import main

    assert main(["verify", str(model), "--labels", "silence,unknown,yes,no"]) == 0
    return folder, json.loads((folder / "device_report.json").read_text())


@needs_gxx
def test_verify_writes_a_header_that_compiles_and_registers_exactly_the_models_ops(verified, tmp_path):
    folder, report = verified
    text = (folder / SETTINGS_FILE).read_text()
    assert text == model_settings_text(report)
    out = compile_and_run(text, tmp_path)
    assert [line.split()[1] for line in out if line.startswith("op ")] == [op_method(op) for op in report["ops"]]
    values = dict(line.split(" ", 1) for line in out if not line.startswith(("op ", "label ")))
    assert int(values["registered"]) == len(report["ops"]) == 4
    assert int(values["arena"]) >= report["arena_bytes"] + ARENA_MARGIN_BYTES and int(values["arena"]) % 16 == 0
    assert (values["frames"], values["bins"], values["elements"]) == ("49", "40", "1960")
    assert (values["rate"], values["stride"], values["threshold"], values["window"]) == ("16000", "20", "200", "1000")
    assert [line[6:] for line in out if line.startswith("label ")] == ["[silence]", "[unknown]", "[yes]", "[no]"]


@needs_gxx
def test_calibrated_settings_and_hostile_labels_reach_the_header(verified, tmp_path):
    folder, report = verified
    path = tmp_path / "device_report.json"
    path.write_text(json.dumps({**report, "labels": ["_silence_", 'say "hi"\\', "line\nbreak", "café"]}))
    update_device_report(path, detection={"detection_threshold": 0.83, "score_threshold": 212,
                                          "average_window_duration_ms": 750, "suppression_ms": 1500,
                                          "minimum_count": 3})
    text = (tmp_path / SETTINGS_FILE).read_text()
    assert "chosen on a stream of validation speakers" in text
    out = compile_and_run(text, tmp_path / "build")
    assert "threshold 212" in out and "window 750" in out
    labels = [line[6:] for line in out if line.startswith("label ")]
    assert labels[:2] == ["[silence]", '[say "hi"\\]'] and labels[3] == "[café]"
    assert "label [line" in out and "break]" in out  # the newline is inside the string, not a new line of code


def test_every_op_our_models_use_has_a_tflm_resolver_method():
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "RESHAPE", "AVERAGE_POOL_2D",
               "MAX_POOL_2D", "ADD", "MUL", "MEAN", "QUANTIZE", "DEQUANTIZE", "RELU", "PAD", "CONCATENATION",
               "SVDF", "STRIDED_SLICE", "LOGISTIC"):
        assert op_method(op) in TFLM_ADD_METHODS, op
