"""q8studio: inspect, int8-quantize and compare ONNX models."""

__version__ = "0.1.0"
