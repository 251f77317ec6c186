"""ONNX models: loading and checking user files (``onnxfile``) and generating reference architectures (``zoo``)."""
