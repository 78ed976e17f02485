"""Running an int8 model on the sample a layer is explained on, and comparing the layer's output with ours.

Shared by every kind of explained layer (:mod:`.explain` for Conv, Gemm and MatMul, :mod:`.explainadd` for
Add): the run that exposes the layer's 8-bit tensors, the kernel ONNX Runtime chose for the layer, the float
model's value of the same tensor, and the record of one element-by-element comparison.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Q8Error
from .explainsample import SampleFeed
from .metrics import measure
from .model import Graph, LoadedModel, Node
from .runtimegraph import RuntimeNode, open_session, source_node
from .session import BatchRunner
from .weights import QuantParams

ABSORBED_ACTIVATIONS = ("Relu", "Clip")
"""Activations the quantizer removes after a layer: the clamp to its output range does their work."""


@dataclass(frozen=True)
class Check:
    """One output compared element by element with ONNX Runtime's."""

    reference: str
    total: int
    differing: int
    max_diff: float
    cause: str = ""
    tolerance: float = 0.0  # 0 for integer outputs; float32 outputs match within rounding

    @property
    def bit_exact(self) -> bool:
        return self.exact and self.tolerance == 0.0

    @property
    def exact(self) -> bool:
        return self.differing == 0

    @property
    def fraction(self) -> float:
        return self.differing / self.total if self.total else 0.0

    def summary(self) -> str:
        if self.exact:
            agreement = "bit-exact with" if self.tolerance == 0.0 else f"within {self.tolerance:.1g} of"
            return f"{self.reference}: {agreement} ONNX Runtime ({self.total} elements)"
        return (f"{self.reference}: {self.differing} of {self.total} elements ({100 * self.fraction:.3f}%) differ "
                f"from ONNX Runtime, by at most {self.max_diff:g}")

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "exact": self.exact, "bit_exact": self.bit_exact, "fraction": self.fraction}


def run_on_sample(model: LoadedModel, names: list[str], sample: SampleFeed, threads: int, *, probe: bool = False
                  ) -> tuple[list[dict[str, np.ndarray]], list[RuntimeNode]]:
    """Run ``model`` with ``names`` exposed and return their values on the whole feed, and with ``probe`` also on
    the feed with the sample's inputs changed (one session for both); also return the kernels ONNX Runtime ran."""
    names = list(dict.fromkeys(names))
    with tempfile.TemporaryDirectory(prefix="q8studio-explain-") as tmp:
        session, kernels = open_session(model.proto, Path(tmp), outputs=names, threads=threads)
        runner = BatchRunner(model, session)
        runs = [dict(zip(names, runner.run(names, sample.feed)))]
        if probe:
            try:
                runs.append(dict(zip(names, runner.run(names, sample.changed()))))
            except Q8Error as error:
                raise Q8Error(f"{error} (a run with sample {sample.first + sample.index}'s inputs changed, made "
                              "to find its part of the batch; use a model with a batch of 1 or an unfixed batch)"
                              ) from None
    return runs, kernels


def kernel_of(kernels: list[RuntimeNode], graph: Graph, node: Node) -> RuntimeNode | None:
    """The kernel ONNX Runtime ran for ``node`` (a fused one included), None when no kernel stands for it."""
    return next((k for k in kernels if source_node(k, graph, kernels) == node.name), None)


def dequantizer_of(graph: Graph, tensor: str) -> Node | None:
    """The DequantizeLinear writing ``tensor``, None when another node (or none) does: an int8 layer's inputs."""
    index = graph.producer.get(tensor)
    node = graph.nodes[index] if index is not None else None
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def float_value(float_model: LoadedModel, int8_graph: Graph, node: Node, y_tensor: str | None, sample: SampleFeed,
                threads: int) -> tuple[str | None, np.ndarray | None]:
    """The float model's tensor standing for ``node``'s output, and its value on the sample (its rows of a batch).

    It has the node's output name (after BatchNorm folding, the BatchNorm's output; with a ReLU removed, the
    ReLU's), or, when the output is requantized (``y_tensor``, the QuantizeLinear's output), the name the
    DequantizeLinear after it restores (a model output).
    """
    candidates = [node.outputs[0]]
    if y_tensor is not None:
        candidates += [int8_graph.nodes[i].outputs[0] for i in int8_graph.consumers.get(y_tensor, [])]
    name = next((c for c in candidates if c in float_model.graph.tensors), None)
    if name is None:
        return None, None
    runs, _ = run_on_sample(float_model, [name], sample, threads)
    return name, sample.rows(runs[0][name])


def requantized_sqnr(y: QuantParams, runtime: np.ndarray, float_output: np.ndarray | None) -> float | None:
    """SQNR (dB) of the runtime's 8-bit output, dequantized, against the float model's."""
    if float_output is None or float_output.shape != runtime.shape:
        return None
    centered = runtime.astype(np.float64) - y.zero_point.astype(np.float64)
    return measure(float_output, y.scale.astype(np.float64) * centered).sqnr_db


def removed_activation_note(float_model: LoadedModel, tensor: str) -> str | None:
    """The note for a Relu or Clip of the float model the quantizer removed, whose output name ``tensor`` the
    int8 layer now writes; None when the float model computes ``tensor`` otherwise."""
    producer = float_model.graph.producer.get(tensor)
    original = float_model.graph.nodes[producer] if producer is not None else None
    if original is None or original.op_type not in ABSORBED_ACTIVATIONS:
        return None
    return (f"{original.op_type} {original.name} of the float model was removed by the quantizer: the clamp to the "
            "output range [Z_y, qmax] does its work.")
