"""Keyword spotting on a stream of audio, as the device does it.

recognize.py   RecognizeCommands, TFLM micro_speech's post-processing of per-window scores, and the
               DetectionSettings a run's detection.json stores
recognize_vectorized.py  the same post-processing over a whole stream at once (numpy), for calibration
stream.py      running a model every few ms over audio with a continuously running frontend
groundtruth.py ground-truth files ("label,time_ms") and matching commands to them
det.py         false accepts per hour and false rejects over a threshold sweep, and the DET curve
accuracy.py    the original's streaming accuracy of a model on a recording, with the DET sweep
testwav.py     long test recordings of test-split words over background noise, with their ground truth
calibrate.py   choosing the detection settings on a stream of validation speakers (detection.json)
listen.py      live recognition from the microphone, or from a file at real-time pace
"""

from microkws.streaming.accuracy import evaluate_stream, streaming_accuracy
from microkws.streaming.det import write_det
from microkws.streaming.groundtruth import read_ground_truth
from microkws.streaming.recognize import RecognizeCommands, Recognition, recognize_stream
from microkws.streaming.stream import StreamingRecognizer, WindowResult, stream_outputs
from microkws.streaming.testwav import make_streaming_test_wav

__all__ = [
    "RecognizeCommands",
    "Recognition",
    "StreamingRecognizer",
    "WindowResult",
    "evaluate_stream",
    "make_streaming_test_wav",
    "read_ground_truth",
    "recognize_stream",
    "stream_outputs",
    "streaming_accuracy",
    "write_det",
]
