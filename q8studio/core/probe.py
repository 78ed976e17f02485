"""One activation's float values beside the int8 values the next layer really receives, on a few
samples, and their histograms: what the window shows for the tensor of the node a user clicks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Dataset
from .errors import Q8Error
from .evaluate import dequantized_counterparts
from .model import LoadedModel
from .progress import NO_PROGRESS, Progress
from .session import BatchRunner, cpu_session, first_whole_batches
from .tensorview import value_histogram


@dataclass(frozen=True)
class TensorComparison:
    """One activation's float values and their int8-dequantized counterparts on the same samples."""

    tensor: str
    float_values: np.ndarray
    int8_values: np.ndarray
    samples: int
    data_name: str
    """Which data the samples come from: the window says it beside the other views' figures."""

    @property
    def error(self) -> np.ndarray:
        return self.int8_values - self.float_values


class TensorProbe:
    """Float and int8 sessions with every comparable activation exposed, built once per int8 model.

    Creating ONNX Runtime sessions costs far more than running a few samples, so a GUI that
    compares the tensor of each node the user clicks keeps one probe per quantization run.
    """

    def __init__(self, float_model: LoadedModel, int8_model: LoadedModel) -> None:
        counterparts = dequantized_counterparts(int8_model)
        self.pairs = {name: dq for name, dq in counterparts.items() if name in float_model.graph.tensors}
        for name in float_model.graph.outputs:
            if name in int8_model.graph.outputs:
                self.pairs.setdefault(name, name)
        self._float_model = float_model
        # One thread each: a few samples run fast anyway, and ONNX Runtime's spinning thread pools
        # would otherwise take the cores from the window and from a quantization running meanwhile.
        float_session = cpu_session(float_model.proto, outputs=list(self.pairs), threads=1)
        int8_session = cpu_session(int8_model.proto, outputs=list(self.pairs.values()), threads=1)
        self._float, self._int8 = BatchRunner(float_model, float_session), BatchRunner(int8_model, int8_session)

    def compare(
        self, tensor: str, data: Dataset, *, samples: int = 16, progress: Progress = NO_PROGRESS
    ) -> TensorComparison:
        """The tensor's float and int8-dequantized values on the first ``samples`` samples (whole
        batches of a model that fixes its batch size), flattened.

        In the QDQ model the int8 value of activation X is the DequantizeLinear output fed by
        QuantizeLinear(X): that is what the next layer really receives.
        """
        if tensor not in self.pairs:
            raise Q8Error(
                f"'{tensor}' has no int8 counterpart: the quantizer fused it into the next layer or kept it float."
            )
        int8_name = self.pairs[tensor]
        subset = first_whole_batches(self._float_model, data, samples)
        float_parts, int8_parts = [], []
        done = 0
        for feed in self._float.feeds(subset):
            float_parts.append(self._float.run([tensor], feed)[0].astype(np.float32).ravel())
            int8_parts.append(self._int8.run([int8_name], feed)[0].astype(np.float32).ravel())
            done += len(next(iter(feed.values())))
            progress.report("Comparing one tensor", done, subset.count)
        return TensorComparison(
            tensor, np.concatenate(float_parts), np.concatenate(int8_parts), subset.count, data.name
        )


@dataclass(frozen=True)
class ComparisonView:
    """The histograms of a :class:`TensorComparison`: what the plots need, without the raw values."""

    tensor: str
    samples: int
    data_name: str
    edges: np.ndarray
    float_counts: np.ndarray
    int8_counts: np.ndarray
    error_edges: np.ndarray
    error_counts: np.ndarray
    mean_error: float
    max_abs_error: float


def comparison_view(comparison: TensorComparison, bins: int = 120) -> ComparisonView:
    """Float and int8 values on shared bins, and the error histogram."""
    _, edges = value_histogram(np.concatenate([comparison.float_values, comparison.int8_values]), bins=bins)
    error = comparison.error
    error_counts, error_edges = value_histogram(error, bins=bins)
    return ComparisonView(
        tensor=comparison.tensor,
        samples=comparison.samples,
        data_name=comparison.data_name,
        edges=edges,
        float_counts=np.histogram(comparison.float_values, bins=edges)[0],
        int8_counts=np.histogram(comparison.int8_values, bins=edges)[0],
        error_edges=error_edges,
        error_counts=error_counts,
        mean_error=float(error.mean()) if error.size else 0.0,
        max_abs_error=float(np.abs(error).max()) if error.size else 0.0,
    )
