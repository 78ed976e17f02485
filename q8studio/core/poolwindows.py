"""Where the windows of a pooling lie, as ONNX defines them for MaxPool and AveragePool.

``kernel_shape``, ``strides``, ``dilations`` and the leading pads (``pads`` or ``auto_pad``) place each window;
the output's spatial size is taken from the output ONNX Runtime computed, which settles ``ceil_mode``. A window
position outside the input is padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import Q8Error
from .model import Node

OUTSIDE = np.iinfo(np.int64).min
"""A window position in the padding: below every 8-bit value, so the maximum never takes it."""


@dataclass(frozen=True)
class PoolGeometry:
    """Where the windows of a pooling lie, per spatial axis: window size, stride, dilation and pads."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]

    def summary(self) -> str:
        """The windows in one line: "2x2, stride 2x2" and any dilation or leading pad."""
        text = f"{'x'.join(map(str, self.kernel))}, stride {'x'.join(map(str, self.strides))}"
        if any(d != 1 for d in self.dilations):
            text += f", dilation {'x'.join(map(str, self.dilations))}"
        if any(self.pads_begin):
            text += f", leading pad {'x'.join(map(str, self.pads_begin))}"
        return text

    def positions(self, axis: int, out_size: int) -> np.ndarray:
        """Input positions of every window along ``axis``: [out_size, kernel], negative or past the end in padding."""
        starts = np.arange(out_size)[:, None] * self.strides[axis] - self.pads_begin[axis]
        return starts + np.arange(self.kernel[axis])[None, :] * self.dilations[axis]


def pool_geometry(node: Node, input_spatial: tuple[int, ...]) -> PoolGeometry:
    """The windows of pooling ``node`` on an input of spatial shape ``input_spatial`` (``auto_pad`` resolved)."""
    attributes = node.attributes
    rank = len(input_spatial)
    kernel = tuple(int(k) for k in attributes.get("kernel_shape", ()))  # type: ignore[union-attr]
    if len(kernel) != rank:
        raise Q8Error(f"{node.name} has kernel_shape {list(kernel)} for {rank} spatial axes.")
    strides = tuple(int(s) for s in attributes.get("strides", [1] * rank))  # type: ignore[union-attr]
    dilations = tuple(int(d) for d in attributes.get("dilations", [1] * rank))  # type: ignore[union-attr]
    return PoolGeometry(kernel, strides, dilations, *resolved_pads(node, input_spatial, kernel, strides, dilations))


def past_end_pads(node: Node, input_spatial: Sequence[int], out_spatial: Sequence[int]) -> bool:
    """Whether a window of pooling ``node`` reaches past the input and its trailing pads, as only ``ceil_mode`` makes
    one do: an AveragePool with ``count_include_pad`` has no single count for such a window (see
    :mod:`.poolkernels`)."""
    geometry = pool_geometry(node, tuple(input_spatial))
    return any(int(geometry.positions(axis, out)[-1, -1]) >= size + geometry.pads_end[axis]
               for axis, (size, out) in enumerate(zip(input_spatial, out_spatial)))


def resolved_pads(node: Node, input_spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                  dilations: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The leading and trailing pads per spatial axis of a Conv or pooling ``node``, ``auto_pad`` resolved as ONNX
    defines it (SAME: the output has ceil(size / stride) positions, the odd pad after for UPPER, before for LOWER)."""
    rank = len(input_spatial)
    auto_pad = node.attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(input_spatial, kernel, strides, dilations):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
        return tuple(p[0] for p in pads), tuple(p[1] for p in pads)
    if auto_pad == "VALID":
        return (0,) * rank, (0,) * rank
    explicit = [int(p) for p in node.attributes.get("pads", [0] * 2 * rank)]  # type: ignore[union-attr]
    return tuple(explicit[:rank]), tuple(explicit[rank:])


def pool_windows(x: np.ndarray, geometry: PoolGeometry, out_spatial: tuple[int, ...], fill: object = OUTSIDE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``x`` ([batch, channel, spatial...]) as [batch, channel, *out_spatial, *kernel], positions
    in the padding holding ``fill``; and which window positions lie inside the input, [*out_spatial, *kernel]."""
    rank = len(out_spatial)
    windows = x
    for axis, out_size in enumerate(out_spatial):
        size = x.shape[2 + axis]
        positions = geometry.positions(axis, out_size)
        valid = (positions >= 0) & (positions < size)
        # taken along this axis, the axis becomes (out, kernel) at 2 + 2 * axis; later axes are still whole
        windows = np.take(windows, np.clip(positions, 0, size - 1), axis=2 + 2 * axis)
        shape = [1] * windows.ndim
        shape[2 + 2 * axis], shape[3 + 2 * axis] = valid.shape
        windows = np.where(valid.reshape(shape), windows, np.asarray(fill, windows.dtype))
    order = [0, 1] + [2 + 2 * a for a in range(rank)] + [3 + 2 * a for a in range(rank)]
    return windows.transpose(order), window_mask(geometry, tuple(x.shape[2:]), out_spatial)


def window_mask(geometry: PoolGeometry, input_spatial: tuple[int, ...], out_spatial: tuple[int, ...], *,
                with_pads: bool = False) -> np.ndarray:
    """Which window positions lie inside the input, [*out_spatial, *kernel]; ``with_pads``: inside the input and
    its explicit pads (what an AveragePool with count_include_pad counts)."""
    mask = np.ones((), bool)
    for axis, (size, out_size) in enumerate(zip(input_spatial, out_spatial)):
        positions = geometry.positions(axis, out_size)
        low, high = (-geometry.pads_begin[axis], size + geometry.pads_end[axis]) if with_pads else (0, size)
        mask = np.logical_and.outer(mask, (positions >= low) & (positions < high))
    rank = len(out_spatial)
    return mask.transpose([2 * a for a in range(rank)] + [2 * a + 1 for a in range(rank)])


@dataclass(frozen=True)
class Window:
    """One output element's window: its values ([kernel...], ``fill`` in the padding), which positions lie in
    the input, and per spatial axis the input positions it covers."""

    values: np.ndarray
    inside: np.ndarray
    positions: tuple[tuple[int, ...], ...]


AXIS_NAMES = {1: ("positions",), 2: ("rows", "columns"), 3: ("depths", "rows", "columns")}


def window_of(x: np.ndarray, geometry: PoolGeometry, index: tuple[int, ...], fill: object) -> Window:
    """The window of output element ``index`` ([batch, channel, spatial...]) over ``x``."""
    batch, channel, out_at = index[0], index[1], index[2:]
    rank = len(out_at)
    # the one window as a pooling of its own: its origin moved to the window's start
    shifted = PoolGeometry(geometry.kernel, (1,) * rank, geometry.dilations,
                           tuple(p - o * s for p, o, s in zip(geometry.pads_begin, out_at, geometry.strides)),
                           geometry.pads_end)
    values, inside = pool_windows(x[batch:batch + 1, channel:channel + 1], shifted, (1,) * rank, fill)
    positions = tuple(tuple(int(p) for p in geometry.positions(a, out_at[a] + 1)[out_at[a]]) for a in range(rank))
    return Window(values.reshape(geometry.kernel), inside.reshape(geometry.kernel), positions)


def window_place(positions: tuple[tuple[int, ...], ...]) -> str:
    """Where a window lies: "rows 4–5, columns 10–11", or for a dilated one "rows 0, 2, 4"."""
    names = AXIS_NAMES.get(len(positions), ())
    return ", ".join(_positions_text(name, along) for name, along in zip(names, positions))


def _positions_text(name: str, positions: tuple[int, ...]) -> str:
    if len(positions) > 1 and all(b - a == 1 for a, b in zip(positions, positions[1:])):
        return f"{name} {positions[0]}–{positions[-1]}"
    return f"{name} {', '.join(map(str, positions))}"
