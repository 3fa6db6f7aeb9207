"""microkws: train keyword-spotting models for TensorFlow Lite Micro.

The pipeline, one module per stage:
audio -> dataset -> features -> models -> train -> export -> device -> evaluate / streaming.
"""

__version__ = "0.1.0"
