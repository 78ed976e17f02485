"""Which part of a fixed batch's tensors is one sample's, for explaining a layer on that sample.

A model that fixes its batch at B runs B samples at once, and a layer's tensors hold all of them. After a
Reshape to [B * seq, k] sample k still owns a block of rows; after a Transpose to a time-major layout it
does not. The block is taken only once a second run, with the sample's inputs changed, shows that nothing
outside it moved.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .data import Dataset
from .errors import Q8Error
from .model import LoadedModel, Node
from .session import later_batch_axis, smallest_run


@dataclass(frozen=True)
class SampleFeed:
    """What to run to see one sample: the sample alone, or a batch holding it when the model fixes its batch size."""

    feed: dict[str, np.ndarray]
    first: int  # the data's sample the feed starts with
    size: int  # samples in the feed
    index: int  # the sample's place among them

    def part(self, shape: tuple[int, ...], axis: int = 0) -> tuple[slice, ...] | None:
        """Where the sample's part of a tensor of ``shape`` would be, None when ``axis`` does not split into the
        feed's samples.

        A tensor whose ``axis`` holds the batch's samples one after another ([batch, ...], or
        [batch * seq, ...] after a Reshape, which keeps row-major order) gives sample k rows
        k R to (k + 1) R - 1, R = length / samples. A time-major layout does not: :func:`_confirm_part`
        tells them apart.
        """
        length = shape[axis]
        if length % self.size:
            return None
        per = length // self.size
        return (slice(None),) * axis + (slice(self.index * per, (self.index + 1) * per),)

    def rows(self, value: np.ndarray, axis: int = 0) -> np.ndarray | None:
        """The sample's part of ``value`` along ``axis`` (see :meth:`part`)."""
        where = self.part(value.shape, axis)
        return None if where is None else value[where]

    def layer_rows(self, value: np.ndarray, output_shape: tuple[int, ...], layer: str) -> np.ndarray:
        """The sample's rows of an input or output of a layer whose output has ``output_shape``; an input broadcast
        along the batch axis stays whole. ``layer`` names the layer in the error ("Add")."""
        if value.ndim < len(output_shape) or value.shape[0] != output_shape[0]:
            return value
        rows = self.rows(value)
        if rows is None:
            raise Q8Error(f"The {layer}'s tensors of shape {list(value.shape)} do not split into the batch's "
                          f"{self.size} samples.")
        return rows

    def changed(self) -> dict[str, np.ndarray]:
        """The feed with only the sample's inputs changed, to see which elements of a tensor depend on them.

        Float inputs get noise as large as their own spread, so that 8-bit values downstream change too;
        integer and bool inputs (token ids, masks) take the next sample's values, which the model accepts.
        """
        rng, feed = np.random.default_rng(0), {}
        for name, value in self.feed.items():
            value = value.copy()
            own = value[self.index]
            if np.issubdtype(value.dtype, np.floating):
                finite = own[np.isfinite(own)].astype(np.float64)
                spread = float(finite.std()) if finite.size else 0.0
                spread = spread or float(np.abs(finite).max(initial=0.0)) or 1.0
                value[self.index] = own + (rng.standard_normal(own.shape) * spread).astype(value.dtype)
            else:
                value[self.index] = value[(self.index + 1) % self.size]
            feed[name] = value
        return feed

    def notes(self, output_shape: tuple[int, ...]) -> list[str]:
        """Where the sample sits in a run of several, when that shows in what is explained."""
        sample, notes = self.first + self.index, []
        if self.first % self.size:
            notes.append(f"The model runs {self.size} samples at a time and the data ends within sample {sample}'s "
                         f"batch, so it ran with samples {self.first} to {self.first + self.size - 1}.")
        per = output_shape[0] // self.size
        if self.size > 1 and per > 1:
            notes.append(f"The output {list(output_shape)} holds the batch's {self.size} samples one after another: "
                         f"sample {sample} is its rows {self.index * per} to {(self.index + 1) * per - 1}, "
                         "and indices below count from the first of them.")
        return notes


def sample_feed(model: LoadedModel, data: Dataset, index: int) -> SampleFeed:
    """Sample ``index`` alone, or for a model that fixes its batch at B, its batch of B, or the data's last B
    samples when the data ends within that batch: only one run is needed, not whole batches of the file."""
    if not 0 <= index < data.count:
        raise Q8Error(f"Sample {index} does not exist: the data has samples 0 to {data.count - 1}.")
    if (later := later_batch_axis(model)) is not None:
        spec, axis = later
        raise Q8Error(f"Explain takes one sample as one row of the data's first axis, but input '{spec.name}' "
                      f"{spec.shape_text()} has its batch axis at axis {axis} ({spec.shape[axis]}): a row here "
                      "holds a step of several samples, not one sample.")
    size = smallest_run(model)
    if data.count < size:
        raise Q8Error(f"The model's batch axis is fixed at {size}, so a run takes {size} samples; "
                      f"the data has only {data.count}.")
    first = min(index - index % size, data.count - size)
    samples = list(itertools.islice(data.batches(1), first, first + size))
    feed = {name: np.concatenate([one[name] for one in samples]) for name in samples[0]}
    return SampleFeed(feed, first, size, index - first)


def sample_part(node: Node, x: str, w: str, y: str, runs: list[dict[str, np.ndarray]], sample: SampleFeed
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The values of tensors ``x``, ``w`` (None when not exposed: a stored weight) and output ``y``, cut to what
    belongs to the sample.

    The output's leading axis says which rows are the sample's; an input is cut along the axis that
    runs with it, and kept whole when every output row reads all of it (a weight matrix, a broadcast operand).
    With a second run (the sample's inputs changed), the parts are confirmed before they are shown.
    """
    values = runs[0]
    output = values[y]
    parts: dict[str, tuple[str, tuple[slice, ...] | None]] = {"output": (y, sample.part(output.shape))}
    if parts["output"][1] is None:
        raise Q8Error(f"{node.name}'s output has shape {list(output.shape)}: its leading axis does not split into "
                      f"the {sample.size} samples of a run, so sample {sample.first + sample.index}'s part is unknown.")
    for operand, role, name in ((0, "input x", x), (1, "input w", w)):
        if name in values:
            axis = _sample_axis(node, operand, values[name], output.shape)
            parts[role] = (name, None if axis is None else sample.part(values[name].shape, axis))
    if len(runs) > 1:
        _confirm_part(node, parts, runs, sample)
    cut = {role: values[name] if where is None else values[name][where] for role, (name, where) in parts.items()}
    return cut["input x"], cut.get("input w"), cut["output"]


def _confirm_part(node: Node, parts: dict[str, tuple[str, tuple[slice, ...] | None]],
                  runs: list[dict[str, np.ndarray]], sample: SampleFeed) -> None:
    """Refuse unless changing the sample's inputs changed something, and only inside the parts taken as its own.

    A batch's samples need not lie one after another along the leading axis: after a Transpose to a
    time-major [seq, batch, ...] layout every row holds all samples, and rows k R to (k + 1) R - 1 are
    other samples' data too. Only the sample's own part may change; a part kept whole (every sample
    reads it) may not change at all.
    """
    index, touched = sample.first + sample.index, False
    for role, (name, where) in parts.items():
        before, after = runs[0][name], runs[1][name]
        changed = np.ones(before.shape, bool) if before.shape != after.shape else ~_same(before, after)
        if where is not None:
            touched |= bool(changed[where].any())
            changed[where] = False
        if changed.any():
            raise Q8Error(f"{node.name}'s {role} of shape {list(before.shape)} mixes the batch's {sample.size} "
                          f"samples (a Transpose before it?): changing sample {index}'s inputs changes it outside "
                          f"the part that would be sample {index}'s, so that part cannot be shown; use a model "
                          "with a batch of 1 or an unfixed batch.")
    if not touched:
        raise Q8Error(f"Changing sample {index}'s inputs changed neither the input nor the output of {node.name}, "
                      f"so which part of the batch's tensors is sample {index}'s cannot be told.")


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality, NaN equal to NaN."""
    same = a == b
    if np.issubdtype(a.dtype, np.floating):
        same |= np.isnan(a) & np.isnan(b)
    return same


def _sample_axis(node: Node, operand: int, value: np.ndarray, output_shape: tuple[int, ...]) -> int | None:
    """The axis of input ``operand`` that runs along the output's leading axis, None if there is none."""
    if node.op_type == "Gemm":  # A is [M, K] (or [K, M] with transA); B is the same for every row
        return (1 if node.attributes.get("transA", 0) else 0) if operand == 0 else None
    if node.op_type == "Conv":  # x is [N, C, H, W]; the weight is the same for every sample
        return 0 if operand == 0 else None
    # MatMul: A's rows are the output's; a batched operand shares the output's leading (batch) axis
    batched = value.ndim == len(output_shape) and value.shape[0] == output_shape[0]
    return 0 if batched and (operand == 0 or value.ndim > 2) else None
