"""One model under ONNX Runtime's built-in profiler: every kernel, its mean time, and what it serves.

The profiler writes a JSON trace (one event per kernel per run, in microseconds) into a temporary
folder that is deleted after reading. Kernel events are assigned to the ``model_run`` span that
contains them, so warm-up and disturbed runs can be dropped as whole runs.
"""

from __future__ import annotations

import bisect
import json
import math
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Q8Error
from .model import LoadedModel
from .runtimegraph import (
    RuntimeNode, absorbed_nodes, is_dequantize, is_glue, is_qdq, open_session, source_node,
)
from .session import BatchRunner

INTEGER_TYPES = frozenset({"uint8", "int8"})
KEPT_RUNS = 0.8
"""Fraction of the profiled runs averaged: the fastest ones (see :func:`_kernel_times`)."""
_READ_BYTES = 1 << 20  # of a profile file at a time


@dataclass(frozen=True)
class KernelTime:
    """One kernel of a profiled model: what it is, what it computes and its mean time per run."""

    name: str
    op_type: str
    domain: str
    us: float
    integer: bool  # it reads 8-bit integers (see :func:`_kernel_times`)
    node: str | None  # the source node it computes; None for glue
    glue: bool  # Quantize/Dequantize, or a layout kernel ONNX Runtime inserted

    @property
    def label(self) -> str:
        return f"{self.op_type} (NCHWc)" if self.domain.endswith("nchwc") else self.op_type


@dataclass
class ModelProfile:
    """The kernels of one model, its mean profiled run time, and who each glue kernel serves."""

    kernels: list[KernelTime]
    run_us: float
    runs: int
    glue_owners: dict[str, list[str]]
    absorbed: dict[str, str]
    graph: list[RuntimeNode]

    @property
    def kernel_us(self) -> float:
        return sum(k.us for k in self.kernels)

    @property
    def qdq_us(self) -> float:
        return sum(k.us for k in self.kernels if is_qdq(k.name, k.op_type))

    @property
    def layout_us(self) -> float:
        return sum(k.us for k in self.kernels if k.glue and not is_qdq(k.name, k.op_type))

    def to_dict(self) -> dict[str, object]:
        return {
            "run_us": self.run_us,
            "kernel_sum_us": self.kernel_us,
            "qdq_glue_us": self.qdq_us,
            "layout_glue_us": self.layout_us,
            "runs": self.runs,
            "kernels": [{**k.__dict__, "label": k.label} for k in self.kernels],
        }


def profile_model(
    model: LoadedModel, feed: dict[str, np.ndarray], *, runs: int, warmup: int, threads: int
) -> ModelProfile:
    """Run ``model`` ``warmup + runs`` times under the profiler and tie each kernel to its source node."""
    if runs < 1:
        raise Q8Error(f"Profiling needs at least one run (got {runs}).")
    with tempfile.TemporaryDirectory(prefix="q8studio-profile-") as tmp:
        session, kernels = open_session(model.proto, Path(tmp), threads=threads, profile=True)
        runner = BatchRunner(model, session)  # a failure on this data is said in one line
        for _ in range(warmup + runs):
            runner.run(None, feed)
        try:
            times, run_us, integer_kernels = _kernel_times(Path(session.end_profiling()), warmup)
        except ValueError as exc:  # JSONDecodeError is one
            raise Q8Error(f"ONNX Runtime's profile could not be read: {exc}") from None
    profile = []
    for k in kernels:
        glue = is_glue(k, model.graph)
        integer = k.name in integer_kernels
        node = None if glue else source_node(k, model.graph, kernels)
        profile.append(KernelTime(k.name, k.op_type, k.domain, times.get(k.name, 0.0), integer, node, glue))
    computed = {k.node for k in profile if k.node is not None}
    owners = _glue_owners(kernels, profile)
    return ModelProfile(profile, run_us, runs, owners, absorbed_nodes(model.graph, computed), kernels)


def _profile_events(path: Path, marker: str) -> Iterator[dict]:
    """The events of ONNX Runtime's profile file whose line holds ``marker``, parsed one at a time.

    The profiler writes one event a line. Parsed whole, a 600-layer model's profile (32 MB) held the
    interpreter, and froze the window, for a second; its lines are read a megabyte at a time and parsed
    one by one, keeping nothing, which leaves the other threads their turns (iterating over the file
    object itself still kept them waiting 0.2 s at times). A file laid out otherwise is parsed whole.
    """
    wanted = marker.encode()
    with path.open("rb") as stream:
        if stream.readline().strip() != b"[":
            yield from json.loads(path.read_bytes())
            return
        rest = b""
        while chunk := stream.read(_READ_BYTES):
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                if wanted in line:
                    yield json.loads(line.strip().rstrip(b","))
        if wanted in rest:
            yield json.loads(rest.strip().rstrip(b","))


def _kernel_times(profile: Path, warmup: int) -> tuple[dict[str, float], float, set[str]]:
    """Mean time per run of each kernel, the mean run time, and the kernels that read 8-bit integers,
    from the ``profile`` file: its runs first, then each kernel event added to its run's totals.

    A kernel computes on integers when any of its inputs is 8-bit, whatever its place: QLinearConcat
    reads its output scale first and its quantized inputs after, QLinearConv its data first. Float
    kernels take no 8-bit input; Quantize/Dequantize do, but they are glue, not layers.

    Warm-up runs are dropped, and so is the slowest fifth of the rest: runs disturbed by other
    processes. Kernels and runs are averaged over the same runs, so kernel times still add up.
    """
    spans = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in _profile_events(profile, '"model_run"')
        if e.get("cat") == "Session" and e["name"] == "model_run"
    )[warmup:]
    if not spans:
        raise Q8Error("ONNX Runtime's profiler recorded no runs.")
    fastest = sorted(spans, key=lambda span: span[1] - span[0])[: max(1, math.ceil(len(spans) * KEPT_RUNS))]
    spans = sorted(fastest)
    starts = [start for start, _ in spans]
    totals: dict[str, float] = defaultdict(float)
    integer: set[str] = set()
    for event in _profile_events(profile, '_kernel_time"'):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        inputs = event.get("args", {}).get("input_type_shape") or []
        if any(INTEGER_TYPES.intersection(shape) for shape in inputs):
            integer.add(name)
        position = bisect.bisect_right(starts, event["ts"]) - 1
        if position >= 0 and event["ts"] <= spans[position][1]:
            totals[name] += event["dur"]
    runs = len(spans)
    return {k: v / runs for k, v in totals.items()}, sum(end - start for start, end in spans) / runs, integer


def _glue_owners(kernels: list[RuntimeNode], profile: list[KernelTime]) -> dict[str, list[str]]:
    """Glue kernel -> the source nodes whose kernels it serves (its cost is theirs).

    A Quantize serves the layers it feeds, a Dequantize the layer it follows, a layout kernel
    both sides; when the preferred side has no layer (a model input or output), the other one.
    A compute kernel with no known source node stands for itself, by kernel name.
    """
    flow = _Flow(kernels, {k.name: k for k in profile})
    owners = {}
    for kernel in kernels:
        if not flow.info[kernel.name].glue:
            continue
        down, up = flow.reach(kernel, downstream=True), flow.reach(kernel, downstream=False)
        if is_dequantize(kernel.name, kernel.op_type):
            owners[kernel.name] = up or down
        elif is_qdq(kernel.name, kernel.op_type):
            owners[kernel.name] = down or up
        else:
            owners[kernel.name] = list(dict.fromkeys(up + down))
    return owners


class _Flow:
    """Who produces and who consumes each tensor of the runtime graph."""

    def __init__(self, kernels: list[RuntimeNode], info: dict[str, KernelTime]) -> None:
        self.info = info
        self.by_name = {k.name: k for k in kernels}
        self.producer = {name: k.name for k in kernels for name in k.outputs}
        self.consumers: dict[str, list[str]] = defaultdict(list)
        for k in kernels:
            for name in k.inputs:
                self.consumers[name].append(k.name)

    def reach(self, start: RuntimeNode, *, downstream: bool) -> list[str]:
        """Source nodes of the nearest non-glue kernels on one side of ``start``, walking through glue."""
        found: list[str] = []
        seen, frontier = {start.name}, [start]
        while frontier:
            current = frontier.pop()
            if downstream:
                neighbours = [c for name in current.outputs for c in self.consumers[name]]
            else:
                neighbours = [self.producer[name] for name in current.inputs if name in self.producer]
            for neighbour in neighbours:
                if neighbour in seen:
                    continue
                seen.add(neighbour)
                if self.info[neighbour].glue:
                    frontier.append(self.by_name[neighbour])
                else:
                    found.append(self.info[neighbour].node or neighbour)
        return list(dict.fromkeys(found))
