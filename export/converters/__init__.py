"""Converters from one traced SavedModel to deployable files: `tflite` and `onnx`."""
