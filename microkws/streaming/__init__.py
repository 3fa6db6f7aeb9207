"""Keyword spotting on a stream of audio, as the device does it.

recognize.py   RecognizeCommands, TFLM micro_speech's post-processing of per-window scores
stream.py      running a model every few ms over audio with a continuously running frontend
accuracy.py    ground-truth files, the original's streaming accuracy, false accepts / rejects and DET curves
testwav.py     long test recordings of test-split words over background noise, with their ground truth
listen.py      live recognition from the microphone, or from a file at real-time pace
"""

from microkws.streaming.accuracy import evaluate_stream, read_ground_truth, streaming_accuracy, write_det
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
