"""Creating ONNX Runtime sessions the same way everywhere (CPU, fixed threads, quiet logs), and
running them on the user's samples as many at a time as the model takes."""

from __future__ import annotations

import copy
import itertools
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from .data import Dataset
from .errors import Q8Error, first_line
from .int8pairs import PAIR_FUSER, as_int8, converted_quantizers, int8_quantizers, with_uint8_pairs
from .model import LoadedModel, TensorInfo
from .skeleton import SplitModel, with_weights_outside


Spinning = Literal["never", "within-runs", "always"]
"""When ONNX Runtime's intra-op threads busy-wait for work instead of sleeping (see session_options)."""


def session_options(*, threads: int = 0, spinning: Spinning = "never") -> ort.SessionOptions:
    """Options for a CPU session; ``threads=0`` lets ORT use every core.

    ``spinning``:
    - ``"always"``, ORT's default, also between runs: right for timing, it is what a deployment gets.
    - ``"within-runs"``: while a run lasts, and not once it returns. Right for running the model
      back to back beside light numpy work: min/max calibration of SqueezeNet (200 samples, 2 cores,
      10 fresh processes each) took a median 0.71 s instead of 0.79 s with ``"never"``, since waking
      a sleeping thread for each of the model's many small parallel sections costs more than the spin.
      With large activations summarised inside the model (:mod:`.summaries`), percentile
      calibration of it binning 8,192 values a sample per tensor took 0.56-0.66 s against 0.63-0.72 s.
    - ``"never"``: for work behind an interactive window, whose event loop needs a core, or beside
      heavy numpy work: binning every value of SqueezeNet's activations took the same time either way.
    """
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: every failure reaches us as an exception, said in one line
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if spinning == "never":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spinning == "within-runs":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def cpu_session(
    model: onnx.ModelProto | SplitModel | bytes | Path,
    *,
    outputs: Sequence[str] = (),
    threads: int = 0,
    spinning: Spinning = "never",
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """An ORT CPU session (``options`` overrides ``threads``/``spinning``) that can also return the
    intermediate tensors ``outputs`` (not for a serialized model or a file); load failures become
    Q8Error. A file is read by ONNX Runtime itself, external data included.

    Exposing tensors does not change the kernels ONNX Runtime runs: in a model with int8 activations,
    the pairs it converts to uint8 are converted beforehand (see :mod:`.int8pairs`), and their exposed
    codes come back as uint8 (:class:`BatchRunner` returns them as int8).

    A model's large weights reach ONNX Runtime in memory, as external initializers
    (:class:`~.skeleton.SplitModel`), not serialized with the graph: creating a VGG-19 session took
    2.1 s that way, 0.8 s this way. ONNX Runtime copies them while it creates the session; their
    arrays are dropped afterwards.
    """
    options = options or session_options(threads=threads, spinning=spinning)
    if isinstance(model, onnx.ModelProto):
        model = with_weights_outside(model)
    if isinstance(model, SplitModel):
        if outputs and converts_int8_pairs(options):
            model = pairs_converted_as_run(model)
        return _split_session(SplitModel(with_outputs(model.shell, outputs), model.weights), options)
    if outputs:
        raise ValueError("exposing intermediate tensors needs the model in memory, not serialized or in a file")
    return _session(str(model) if isinstance(model, Path) else model, options)


INT8_KERNELS = "session.qdqisint8allowed"
"""The session option with which ONNX Runtime runs int8 activations with int8 kernels on x86 too, as on ARM."""


def converts_int8_pairs(options: ort.SessionOptions) -> bool:
    """Whether a session with ``options`` may convert int8 pairs to uint8: it optimizes that far, and keeps
    int8 kernels only where the CPU wants them (:data:`INT8_KERNELS` unset)."""
    if int(options.graph_optimization_level) < int(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
        return False
    try:
        return options.get_session_config_entry(INT8_KERNELS) != "1"
    except RuntimeError:  # not set
        return True


def pairs_converted_as_run(model: SplitModel) -> SplitModel:
    """``model`` with the int8 QuantizeLinear -> DequantizeLinear pairs that ONNX Runtime converts to uint8, when
    it runs the model as it stands, in uint8 already: exposing their codes then leaves them uint8."""
    converted = quantizers_run_as_uint8(model)
    return SplitModel(with_uint8_pairs(model.shell, converted), model.weights) if converted else model


def quantizers_run_as_uint8(model: SplitModel) -> frozenset[str]:
    """The int8 QuantizeLinear nodes whose pairs ONNX Runtime converts to uint8 when it runs ``model`` as it
    stands: asked of ONNX Runtime itself (see :mod:`.int8pairs`); none on a CPU whose kernels take int8."""
    if not int8_quantizers(model.shell.graph):
        return frozenset()
    with tempfile.TemporaryDirectory(prefix="q8studio-pairs-") as folder:
        options = session_options(threads=1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        optimized = write_optimized_graph(options, Path(folder))
        _split_session(model, options, disabled_optimizers=[PAIR_FUSER])
        graph = onnx.load(optimized, load_external_data=False).graph
    return converted_quantizers(graph)


def write_optimized_graph(options: ort.SessionOptions, folder: Path) -> Path:
    """Where a session made with ``options`` writes the graph it runs, in ``folder``: its weights go to a file
    of their own that is never read, so only the graph is loaded back (``load_external_data=False``)."""
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.weights")
    return folder / "optimized.onnx"


def _split_session(model: SplitModel, options: ort.SessionOptions, *, disabled_optimizers: Sequence[str] = ()
                   ) -> ort.InferenceSession:
    """A session of ``model`` whose weights ONNX Runtime takes from memory."""
    weights = [numpy_helper.to_array(tensor) for tensor in model.weights]  # alive until ONNX Runtime copied them
    if weights:
        options.add_external_initializers(
            [tensor.name for tensor in model.weights], [ort.OrtValue.ortvalue_from_numpy(array) for array in weights]
        )
    return _session(model.shell.SerializeToString(), options, disabled_optimizers=disabled_optimizers)


def _session(payload: bytes | str, options: ort.SessionOptions, *, disabled_optimizers: Sequence[str] = ()
             ) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(disabled_optimizers) or None)
    except Exception as exc:  # ORT raises several unrelated exception types for bad models
        raise runtime_error("ONNX Runtime cannot load the model", exc) from None


_STATUS = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_NODE_FAILED = re.compile(
    r"^Non-zero status code returned while running (\S+) node\. Name:'(.*?)' Status Message: (.*)", re.DOTALL)
_SOURCE_LOCATION = re.compile(r"^\S+\.(?:h|cc|cpp):\d+ (?:.*? was false\. )?", re.DOTALL)


def runtime_error(failed: str, exc: BaseException) -> Q8Error:
    """A Q8Error saying ``failed`` (a sentence's start: "ONNX Runtime could not run mlp.onnx on this data")
    and why, in words: ONNX Runtime's status code, the node's name and type and the C++ source line its
    message carries are for the details, which keep the message whole.

    "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running Gather node.
    Name:'gather' Status Message: indices element out of data bounds, ..." reads "... on this data: its
    Gather node 'gather' failed (indices element out of data bounds, ...)."
    """
    raw = str(exc).strip()
    reason = _STATUS.sub("", raw)
    node = _NODE_FAILED.match(reason)
    if node:
        op_type, name, said = node.groups()
        said = first_line(_SOURCE_LOCATION.sub("", said.strip())).rstrip(".")
        message = f"{failed}: its {op_type} node '{name}' failed" + (f" ({said})." if said else ".")
    else:
        message = f"{failed}: {first_line(reason) or type(exc).__name__}"
    return Q8Error(message, details=raw if raw not in message else "")


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the given intermediate tensors."""
    augmented = copy.deepcopy(model)
    existing = {o.name for o in augmented.graph.output}
    typed = {vi.name: vi for vi in itertools.chain(model.graph.value_info, model.graph.input)}
    for name in names:
        if name not in existing:
            augmented.graph.output.append(copy.deepcopy(typed[name]) if name in typed else onnx.ValueInfoProto(name=name))
    return augmented


PREFERRED_BATCH = 8
"""Samples per run when the model's batch axis is dynamic: faster than one at a time."""

RUN_OUTPUT_BYTES = 64 * 2**20
"""Most bytes one run of a model with a dynamic batch axis should return; fewer samples run at once
beyond. A pass keeps two runs' outputs alive (:mod:`.prefetch`) and exposes every activation: at 8
samples a run, a model with 192 MB of activations per sample peaked at 4 GB in calibration."""

_ITEM_BYTES = {"float": 4, "float16": 2, "bfloat16": 2, "double": 8, "int8": 1, "uint8": 1, "bool": 1,
               "int16": 2, "uint16": 2, "int32": 4, "uint32": 4}
"""Bytes of an element of ONNX Runtime's ``tensor(T)`` output types; any other counts 8 (an overestimate)."""


def fixed_batch_size(model: LoadedModel) -> int | None:
    """The sample count the model's inputs fix on their leading axis, if any: every run must feed that many."""
    sizes = {
        spec.shape[0] for spec in model.input_specs()
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0
    }
    return min(sizes) if sizes else None


def batch_size(model: LoadedModel) -> int:
    """Samples read at a time: the model's fixed batch size, else :data:`PREFERRED_BATCH` (which
    :class:`BatchRunner` may run in parts, see :data:`RUN_OUTPUT_BYTES`)."""
    return fixed_batch_size(model) or PREFERRED_BATCH


def samples_per_run(output_bytes_per_sample: float | None) -> int:
    """How many samples a run of a dynamic-batch model takes so that its outputs stay within
    :data:`RUN_OUTPUT_BYTES` (one when their size is not known yet)."""
    if output_bytes_per_sample is None:
        return 1
    return max(1, min(PREFERRED_BATCH, int(RUN_OUTPUT_BYTES // max(output_bytes_per_sample, 1.0))))


def declared_output_bytes_per_sample(session: ort.InferenceSession) -> float | None:
    """Bytes per sample of the session's outputs by their declared shapes (the first axis counted as
    the samples'); None when an axis past the first is not fixed, as in a model taking any image size."""
    total = 0
    for output in session.get_outputs():
        dims = list(output.shape or [None])[1:]
        if not all(isinstance(dim, int) for dim in dims):
            return None
        element = output.type.removeprefix("tensor(").removesuffix(")")
        total += int(np.prod(dims, dtype=np.int64)) * _ITEM_BYTES.get(element, 8)
    return float(total)


def smallest_run(model: LoadedModel) -> int:
    """The fewest samples one run of ``model`` takes: its fixed batch size, else one."""
    return fixed_batch_size(model) or 1


def first_whole_batches(model: LoadedModel, data: Dataset, wanted: int) -> Dataset:
    """At most the first ``wanted`` samples of ``data``, rounded down to whole batches of a model that
    fixes its batch size: 16 wanted of 10 samples with a batch fixed at 4 are the first 8, not all 10,
    which the model could not run. Data holding less than one batch is left to :meth:`BatchRunner.feeds`
    to refuse."""
    size, samples = smallest_run(model), min(wanted, data.count)
    return data.limited(max(size, samples - samples % size))


def first_run_feed(model: LoadedModel, data: Dataset) -> dict[str, np.ndarray]:
    """What one run of ``model`` takes, to time it or check that it runs: the first sample, or the
    first batch when the model fixes its batch size."""
    size = smallest_run(model)
    if data.count < size:
        raise sample_count_error(model, size, data.count)
    return next(data.batches(size))


class BatchRunner:
    """Runs one model's session over the user's samples, as many per run as the model takes.

    A model whose batch axis is fixed at N gets exactly N samples per run. A model with a dynamic
    batch axis gets :data:`PREFERRED_BATCH`, or as many as keep a run's outputs within
    :data:`RUN_OUTPUT_BYTES` (:attr:`run_size`: first by the outputs' declared shapes, then by what
    each run returned). Some only run with one sample (an exported Reshape to [1, -1]): once ONNX
    Runtime rejects a batch of several, that batch and the rest of the pass run one sample at a time,
    that batch's outputs joined as described in :func:`join_samples`. A run that fails otherwise
    fails on the user's data or model: a Q8Error.

    Tensors come back in the model's own types: the int8 codes of a pair that ONNX Runtime runs as uint8,
    and that :func:`cpu_session` therefore exposed as uint8, are returned as int8.
    """

    def __init__(self, model: LoadedModel, session: ort.InferenceSession) -> None:
        self.session = session
        self.model = model
        self.uint8_codes = {
            output.name for output in session.get_outputs()
            if output.type == "tensor(uint8)" and getattr(model.graph.tensors.get(output.name), "dtype", None) == "int8"
        }
        self.name = model.path.name  # which model failed, in messages: a comparison runs two
        self.fixed = fixed_batch_size(model)
        self.run_size = self.fixed or samples_per_run(declared_output_bytes_per_sample(session))
        self.one_at_a_time = False

    def feeds(self, data: Dataset) -> Iterator[dict[str, np.ndarray]]:
        """``data`` in runs of :attr:`run_size` samples; with a fixed batch the sample count must divide evenly."""
        if self.fixed:
            if data.count % self.fixed:
                raise sample_count_error(self.model, self.fixed, data.count)
            return data.batches(self.fixed)
        return self._cut(data.batches(PREFERRED_BATCH))

    def _cut(self, batches: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Each batch in runs of :attr:`run_size` samples, as it stands when the run is cut (runs change it)."""
        for feed in batches:
            count, start = len(next(iter(feed.values()))), 0
            while start < count:
                stop = start + self.run_size
                yield {name: rows[start:stop] for name, rows in feed.items()}
                start = stop

    def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``session.run(names, feed)``, one sample at a time once a batch of several was rejected;
        what it returned sets :attr:`run_size` for the runs :meth:`feeds` cuts next."""
        samples = len(next(iter(feed.values())))
        values = self._run(names, feed, samples)
        if self.uint8_codes:
            output_names = names or [output.name for output in self.session.get_outputs()]
            values = [as_int8(value) if name in self.uint8_codes else value
                      for name, value in zip(output_names, values)]
        if not self.fixed:
            self.run_size = samples_per_run(sum(getattr(value, "nbytes", 0) for value in values) / samples)
        return values

    def _run(self, names: list[str] | None, feed: dict[str, np.ndarray], samples: int) -> list[np.ndarray]:
        if not self.one_at_a_time or samples == 1:
            try:
                return self.session.run(names, feed)
            except Exception as exc:  # ONNX Runtime raises assorted types at run time
                if self.fixed or samples == 1:
                    raise runtime_error(f"ONNX Runtime could not run {self.name} on this data", exc) from None
                self.one_at_a_time = True
        runs = [self._run(names, {name: rows[i:i + 1] for name, rows in feed.items()}, 1) for i in range(samples)]
        output_names = names or [output.name for output in self.session.get_outputs()]
        return [join_samples(name, values) for name, values in zip(output_names, zip(*runs))]


def join_samples(name: str, values: Sequence[np.ndarray]) -> np.ndarray:
    """Output ``name`` of runs on one sample each, as one array with a row per sample.

    Values whose leading axis is 1 are that sample's row of a batch: they are concatenated, as the
    batch would have returned them. Any other value (a scalar, such as a ReduceSum without keepdims,
    or an output that dropped the sample axis) belongs to its run as a whole and gets a new leading
    axis, so a scalar output of N runs becomes N values, one per sample, and never mixes samples.
    Values whose shapes differ from sample to sample cannot be joined: a Q8Error naming the output.
    """
    arrays = [np.asarray(value) for value in values]
    try:
        if all(array.ndim and array.shape[0] == 1 for array in arrays):
            return np.concatenate(arrays)
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({str(list(array.shape)) for array in arrays})
        raise Q8Error(
            f"The model runs one sample at a time only, and its output {name!r} has a different shape from one "
            f"sample to the next ({', '.join(shapes)}), so the samples' values cannot be put side by side."
        ) from None


BATCH_DIM_NAME = re.compile(r"(?i)^(n|b|bs|batch|batch_?size|.*_batch|batch_.*)$")
"""Names exporters give a symbolic batch axis; a later free axis named otherwise (H, W, seq_len) is not one."""


def later_batch_axis(model: LoadedModel) -> tuple[TensorInfo, int] | None:
    """An input whose first axis is fixed while a later one is a symbolic batch axis (named as one:
    [4, 3, 'H', 'W'] is a fixed batch of free-sized images), and that axis: the model's batch axis is
    not its first (a sequence-first recurrent net takes [seq, N, features]).

    q8studio still feeds the data's first axis as the model's first, :func:`fixed_batch_size` rows a
    run: such a model's data must hold whole inputs stacked on axis 0, not one sample a row."""
    for spec in model.input_specs():
        shape = spec.shape or ()
        if shape and isinstance(shape[0], int) and shape[0] > 0:
            axis = next((axis for axis, dim in enumerate(shape[1:], start=1)
                         if isinstance(dim, str) and BATCH_DIM_NAME.match(dim)), None)
            if axis is not None:
                return spec, axis
    return None


def sample_count_error(model: LoadedModel, size: int, count: int) -> Q8Error:
    """The user's data does not split into whole batches of a model that fixes its batch size at ``size``.

    When the fixed first axis is not the batch axis (:func:`later_batch_axis`), a sample count would be
    the wrong advice: data with one sample a row fills the model's first axis with several samples."""
    if (later := later_batch_axis(model)) is not None:
        spec, axis = later
        shape, free = spec.shape_text(), (spec.shape or ())[axis]
        return Q8Error(
            f"The model's batch axis is not its first: input '{spec.name}' {shape} fixes axis 0 at {size} and leaves "
            f"axis {axis} ({free}) free. q8studio feeds the data's axis 0 as the model's, {size} rows a run, so the "
            f"data must stack whole inputs {shape} on axis 0 (a multiple of {size} rows; got {count}), not hold one "
            "sample a row."
        )
    fitting = count // size * size
    advice = f"use {fitting} samples" if fitting else f"use at least {size} samples"  # the data or the sample setting
    return Q8Error(
        f"The model's batch axis is fixed at {size}, so the sample count must be a multiple of {size} "
        f"(got {count}); {advice}."
    )
