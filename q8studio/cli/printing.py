"""What the commands print: summaries and tables for a terminal (``--json`` prints the core's dicts instead)."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

from ..core.units import latencies

if TYPE_CHECKING:
    import numpy as np

    from ..core.evaluate import Comparison, ErrorAnalysis, LayerError
    from ..core.explain import Explanation
    from ..core.explainadd import AddExplanation
    from ..core.explainaveragepool import AveragePoolExplanation
    from ..core.explainconcat import ConcatExplanation
    from ..core.explainlookup import LookupExplanation
    from ..core.explainmaxpool import MaxPoolExplanation
    from ..core.explainmove import MoveExplanation
    from ..core.explainmul import MulExplanation
    from ..core.explainpool import PoolExplanation
    from ..core.explainsoftmax import SoftmaxExplanation
    from ..core.profile import ProfileReport
    from ..core.quantize import QuantizeResult
    from ..core.speedup import KeepFloatOutcome
    from ..core.weights import QuantParams

LAYER_ROWS_SHOWN = 10
LOOKUP_ROW = 16
"""Entries per printed row of a 256-entry table: sixteen rows of sixteen."""
NAME_COLUMN_MAX = 60
"""The widest a profile table's name or kernel column grows; a longer text loses its middle to "…"."""


def _calibration_line(result: QuantizeResult) -> str:
    """How the ranges' statistics were had: a candidate of --keep-slow-float reuses the first one's, and
    "calibrated in 0.00 s" would claim a pass that never ran."""
    samples, reused = result.calibration_samples, result.statistics_reused
    if reused and reused == len(result.stats):
        return f"calibration statistics of {samples} samples reused from an earlier run on the same data"
    line = f"calibrated on {samples} samples in {result.timings['calibrate_s']:.2f} s"
    return f"{line} ({reused} tensors' statistics reused)" if reused else line


def print_written(result: QuantizeResult) -> None:
    """What was written and how, printed as soon as the int8 model is on disk: the error analysis after it
    takes a while, and a user who stops it must know the model is there."""
    recipe = result.recipe
    print(f"wrote {result.output_path}  ({recipe.method}, {recipe.granularity}, activations {recipe.activation_type})")
    for note in result.prepared.notes:
        print(f"  {note}")
    print(f"  {_calibration_line(result)}")
    if result.float_nodes:
        print(f"  kept in float ({len(result.float_nodes)}):")
        for node in result.float_nodes:
            print(f"    {node.name} [{node.op_type}]: {node.reason}")
    if not result.int8.is_quantized:
        print("  note: no layer became int8: the model computes in float throughout.")
    sys.stdout.flush()


def print_quantize_errors(errors: ErrorAnalysis) -> None:
    _print_layers(errors.layers, f"per-layer error on {errors.samples} calibration samples, worst first", "--report")


def print_comparison(c: Comparison) -> None:
    from ..core.evaluate import NotMeasured

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    print(f"{'':22}{'float32':>14}{'int8':>14}")
    # a model with several outputs may list features or an auxiliary head first: say which one was scored
    scored = f"   on output {c.errors.scored_output!r}" if c.errors.scored_output and len(c.errors.outputs) > 1 else ""
    print(f"{'top-1 accuracy':22}{pct(c.float32.top1):>14}{pct(c.int8.top1):>14}{scored}")
    float_latency, int8_latency = latencies(c.float32.latency_ms, c.int8.latency_ms)
    print(f"{'median latency':22}{float_latency:>14}{int8_latency:>14}   speed-up {c.speedup:.2f}x")
    print(f"{'file size (bytes)':22}{c.float32.file_size:>14,}{c.int8.file_size:>14,}")
    if c.float32.unstored_parameters:
        print(f"  the float32 file does not store its {c.float32.unstored_parameters:,} parameters: its graph computes "
              "them when it runs, so the sizes do not compare")
    print(f"top-1 agreement: {pct(c.errors.agreement)} over {c.errors.samples} samples")
    for name, acc in c.errors.outputs.items():
        if isinstance(acc, NotMeasured):
            print(f"output {name}: SQNR, cosine, max |error| n/a ({acc.reason})")
        else:
            print(f"output {name}: SQNR {acc.sqnr_db:.2f} dB, cosine {acc.cosine:.5f}, max |error| {acc.max_abs:.4g}")
    _print_layers(c.errors.layers, "per-layer error, worst first", "--json")


def _print_layers(layers: list[LayerError], title: str, all_rows_option: str) -> None:
    if not layers:
        return
    print(f"{title}:")
    print(f"  {'SQNR dB':>9} {'MSE':>11} {'cosine':>9}  layer")
    for row in layers[:LAYER_ROWS_SHOWN]:
        print(f"  {row.sqnr_db:>9.2f} {row.mse:>11.4g} {row.cosine:>9.5f}  {row.node} [{row.op_type}] -> {row.tensor}")
    if len(layers) > LAYER_ROWS_SHOWN:
        print(f"  ... {len(layers) - LAYER_ROWS_SHOWN} more (use {all_rows_option} for all)")


def print_keep_float(outcome: KeepFloatOutcome) -> None:
    float_ms, default_ms, chosen_ms = latencies(outcome.float_ms, outcome.default.latency_ms, outcome.chosen.latency_ms)
    print(f"speed: float32 {float_ms}; default int8 {default_ms} (ratio {outcome.ratio_before:.2f}); "
          f"written int8 {chosen_ms} (ratio {outcome.ratio_after:.2f})")
    if outcome.kept_float:
        # not "because int8 made them slower": a layer may be kept for the glue it saves its neighbours
        print(f"  kept in float, the model running fastest so ({len(outcome.kept_float)}): {', '.join(outcome.kept_float)}")
    print(f"  {outcome.verdict()}")


def print_explanation(e: Explanation) -> None:
    import numpy as np

    from ..core.explainadd import AddExplanation
    from ..core.explainaveragepool import AveragePoolExplanation
    from ..core.explainconcat import ConcatExplanation
    from ..core.explainlookup import LookupExplanation
    from ..core.explainmaxpool import MaxPoolExplanation
    from ..core.explainmove import MoveExplanation
    from ..core.explainmul import MulExplanation
    from ..core.explainpool import PoolExplanation
    from ..core.explainsoftmax import SoftmaxExplanation

    if isinstance(e, AddExplanation):
        _print_add(e)
        return
    if isinstance(e, MulExplanation):
        _print_mul(e)
        return
    if isinstance(e, PoolExplanation):
        _print_pool(e)
        return
    if isinstance(e, (MaxPoolExplanation, AveragePoolExplanation)):
        _print_window_pool(e)
        return
    if isinstance(e, LookupExplanation):
        _print_lookup(e)
        return
    if isinstance(e, ConcatExplanation):
        _print_concat(e)
        return
    if isinstance(e, SoftmaxExplanation):
        _print_softmax(e)
        return
    if isinstance(e, MoveExplanation):
        _print_move(e)
        return
    print(f"{e.node}: {e.kind}, run by ONNX Runtime as {e.runtime_kernel} (sample {e.sample})")
    print(f"  input  x  {e.x.dtype:5}  S_x = {_values(e.x.scale)}  Z_x = {_values(e.x.zero_point)}")
    axis = f" per channel (axis {e.w.axis})" if e.w.per_channel else ""
    print(f"  weight w  {e.w.dtype:5}  S_w{axis} = {_values(e.w.scale)}  Z_w = {_values(e.w.zero_point)}")
    if e.bias_q is not None:
        scale = "S_x*S_w" if e.scaling.bias_scale is None else f"S_b = {e.scaling.bias_scale:.6g}*S_x*S_w"
        print(f"  bias   b  int32  scale {scale}, zero point 0: {_values(e.bias_q)}")
    if e.y is not None:
        print(f"  output y  {e.y.dtype:5}  S_y = {_values(e.y.scale)}  Z_y = {_values(e.y.zero_point)}")
        m, alpha = e.multipliers, "alpha*" if e.scaling.alpha != 1.0 else ""
        print(f"  M = {alpha}S_x*S_w/S_y = {_values(np.array([x.real for x in m]))}; "
              f"M0 = {_values(np.array([x.m0 for x in m]))}, n = {_values(np.array([x.shift for x in m]))}; "
              f"largest |error| of M0*2^-n: {max(abs(x.rel_error) for x in m):.1e}")
    if e.scaling.summary():
        print(f"  {e.scaling.summary()}")
    _print_verdict(e)
    ex = e.example
    print(f"worked example: output element {list(ex.index)}")
    padding = "; padding holds Z_x" if not ex.in_bounds.all() else ""
    print(f"  receptive field x_q ({'x'.join(map(str, ex.x_q.shape))}{padding}):")
    _print_grid(ex.x_q)
    print(f"  weights w_q ({'x'.join(map(str, ex.w_q.shape))}):")
    _print_grid(ex.w_q)
    for step in ex.steps():
        print(f"  {step}")


def _print_verdict(e: Explanation) -> None:
    """Notes, the checks against ONNX Runtime and the float model's comparison: the same for every layer."""
    for note in e.notes:
        print(f"  note: {note}")
    for check in e.checks:
        print(f"  check: {check.summary()}" + (f" ({check.cause})" if check.cause else ""))
    if e.float_tensor is not None:
        sqnr = "n/a" if e.sqnr_db is None else f"{e.sqnr_db:.2f} dB"
        print(f"  float model: tensor {e.float_tensor}; SQNR of the int8 output against it: {sqnr}")


def _print_add(e: AddExplanation) -> None:
    print(f"{e.node}: Add of two 8-bit tensors, run by ONNX Runtime as {e.runtime_kernel} (sample {e.sample})")
    _print_tensors((("a", e.a), ("b", e.b), ("y", e.y)))
    r = e.ratios
    print(f"  QLinearAdd: r_a = S_a/S_y = {r.a:.9g}, r_b = S_b/S_y = {r.b:.9g}, c = Z_y - (r_a*Z_a + r_b*Z_b) = "
          f"{r.constant:.9g} (float32)")
    _print_verdict(e)
    _print_worked_example(e)


def _print_mul(e: MulExplanation) -> None:
    print(f"{e.node}: Mul of two 8-bit tensors, run by ONNX Runtime as {e.runtime_kernel} (sample {e.sample})")
    _print_tensors((("a", e.a), ("b", e.b), ("y", e.y)))
    c = e.constants
    print(f"  QLinearMul: M = S_a*S_b/S_y = {c.ratio:.9g} (float32, from S_a*S_b = {c.scales:.9g})")
    _print_verdict(e)
    _print_worked_example(e)


def _print_pool(e: PoolExplanation) -> None:
    print(f"{e.node}: GlobalAveragePool of an 8-bit tensor, run by ONNX Runtime as {e.runtime_kernel} "
          f"(sample {e.sample})")
    _print_tensors((("x", e.x), ("y", e.y)))
    print(f"  QLinearGlobalAveragePool: N = {e.count} values per channel, f = S_x/(S_y*N) = {e.factor:.9g} (float32)")
    _print_verdict(e)
    ex = e.example
    _print_worked_example(e, f"channel {ex.index[1]} x_q ({'x'.join(map(str, ex.x_q.shape))})", ex.x_q)


def _print_window_pool(e: MaxPoolExplanation | AveragePoolExplanation) -> None:
    """A MaxPool or AveragePool: its windows, the two tensors, the checks and one window worked through."""
    print(f"{e.node}: {e.op_type} of an 8-bit tensor ({e.window_summary()}), run by ONNX Runtime as "
          f"{e.runtime_kernel} (sample {e.sample})")
    _print_tensors((("x", e.x), ("y", e.y)))
    _print_verdict(e)
    ex = e.example
    padding = "" if ex.inside.all() else f"; padding shown as Z_x, {e.padding_role()}"
    _print_worked_example(e, f"window x_q ({'x'.join(map(str, ex.x_q.shape))}{padding})", ex.x_q)


def _print_lookup(e: LookupExplanation) -> None:
    """A Sigmoid or LeakyRelu: the two tensors, the table and the entry the worked element reads."""
    print(f"{e.node}: {e.function} of an 8-bit tensor, run by ONNX Runtime as {e.runtime_kernel} (sample {e.sample})")
    _print_tensors((("x", e.x), ("y", e.y)))
    print(f"  table T: {e.table_summary()}")
    _print_verdict(e)
    print(f"  T[x_q] for x_q = {e.codes[0]} .. {e.codes[-1]}, {LOOKUP_ROW} per row:")
    for start in range(0, e.table.size, LOOKUP_ROW):
        cells = " ".join(f"{int(v):4d}" for v in e.table[start:start + LOOKUP_ROW])
        print(f"    {int(e.codes[start]):5d}: {cells}")
    _print_worked_example(e)


def _print_concat(e: ConcatExplanation) -> None:
    """A Concat: every input's quantization and whether it is copied or requantized, the checks, one element."""
    print(f"{e.node}: Concat of {len(e.inputs)} 8-bit tensors along axis {e.axis}, run by ONNX Runtime as "
          f"{e.runtime_kernel} (sample {e.sample})")
    _print_tensors(tuple((f"x{n}", i.params) for n, i in enumerate(e.inputs)) + (("y", e.y),))
    for n, i in enumerate(e.inputs):
        how = "copied (the output's scale and zero point)" if i.copied else "requantized through a 256-entry table"
        print(f"  input {n}: output positions {i.start} .. {i.start + i.size - 1} along axis {e.axis}, {how}")
    _print_verdict(e)
    _print_worked_example(e)


def _print_softmax(e: SoftmaxExplanation) -> None:
    """A Softmax: the two tensors, the kernel's constants, the checks and one element with its row."""
    import numpy as np

    print(f"{e.node}: Softmax of an 8-bit tensor along {e.row_summary()}, run by ONNX Runtime as {e.runtime_kernel} "
          f"(sample {e.sample})")
    _print_tensors((("x", e.x), ("y", e.y)))
    print(f"  QLinearSoftmax: rows of D = {e.length} values; table E[d] = exp((b - d)*S_x), b = {e.shift:.6g}; "
          f"K = floor(1/S_y) = {e.multiplier:g}")
    _print_verdict(e)
    row = e.row
    _print_worked_example(e, f"its row: x_q, then y_q ({row.x_q.size} values)", np.stack([row.x_q, row.kernel_y_q]))


def _print_move(e: MoveExplanation) -> None:
    """A layer that moves values: what it does to the shape, the two tensors, the checks, one element."""
    print(f"{e.node}: {e.op_type} of an 8-bit tensor ({e.movement}), run by ONNX Runtime as {e.runtime_kernel} "
          f"(sample {e.sample})")
    _print_tensors((("x", e.x), ("y", e.y)))
    _print_verdict(e)
    _print_worked_example(e)


def _print_worked_example(e: AddExplanation | MulExplanation | PoolExplanation | MaxPoolExplanation
                          | AveragePoolExplanation | LookupExplanation | ConcatExplanation | SoftmaxExplanation
                          | MoveExplanation,
                          grid_title: str = "", grid: np.ndarray | None = None) -> None:
    """The worked element of a layer without weights: its index, the values it reads as a grid, the steps."""
    print(f"worked example: output element {list(e.example.index)}")
    if grid is not None:
        print(f"  {grid_title}:")
        _print_grid(grid)
    for step in e.steps():
        print(f"  {step}")


def _print_tensors(tensors: tuple[tuple[str, QuantParams], ...]) -> None:
    """One line per 8-bit tensor of a layer without weights: inputs first, the output ("y") last."""
    for symbol, params in tensors:
        role = "output" if symbol == "y" else "input "
        print(f"  {role} {symbol}  {params.dtype:5}  S_{symbol} = {_values(params.scale)}  "
              f"Z_{symbol} = {_values(params.zero_point)}  ({params.tensor})")


def _values(array: np.ndarray, shown: int = 4) -> str:
    """A scalar as itself; a vector as its first values and range (or its one value when all are equal)."""
    flat = array.reshape(-1)
    text = str if flat.dtype.kind in "iu" else (lambda v: f"{v:.4g}")
    if flat.size == 1:
        return str(flat[0]) if flat.dtype.kind in "iu" else f"{flat[0]:.6g}"
    if (flat == flat[0]).all():
        return f"{text(flat[0])} (all {flat.size} channels)"
    head = ", ".join(text(v) for v in flat[:shown])
    return f"[{head}{', ...' if flat.size > shown else ''}] ({flat.size} values, {text(flat.min())} .. {text(flat.max())})"


def _print_grid(values: np.ndarray, rows: int = 6, columns: int = 16) -> None:
    """Integer arrays as aligned rows: channels of a window, or one long row of a matrix product."""
    grid = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(1, -1)
    for row in grid[:rows]:
        cells = " ".join(f"{int(v):5d}" for v in row[:columns])
        print(f"    {cells}{' ...' if row.size > columns else ''}")
    if len(grid) > rows:
        print(f"    ... {len(grid) - rows} more rows")


def print_profile(r: ProfileReport) -> None:
    if r.latency_ms:
        float_ms, int8_ms = latencies(*r.latency_ms)
        print(f"latency (median, alternating, threads {r.threads or 'all'}): float32 {float_ms}, int8 {int8_ms}")
    _print_profile_table(r)
    print("(microseconds per run; float us includes the float model's layout kernels charged to the layer, +glue us the "
          "int8 layer's share of Quantize/Dequantize and layout kernels)")
    for name, profile in (("float32", r.float32), ("int8", r.int8)):
        print(f"{name}: kernels {profile.kernel_us:.1f} us of a {profile.run_us:.1f} us profiled run; glue: "
              f"Quantize/Dequantize {profile.qdq_us:.1f} us, layout {profile.layout_us:.1f} us")
    print(f"integer kernels ran {r.mac_share_text(decimals=1)}")
    constants = [b for b in r.boundaries if b.of_constant]
    for b in r.boundaries:
        if b not in constants:
            way = "enters int8" if b.enters_int8 else "leaves int8"
            print(f"float32 {way} at {b.tensor} ({b.at}) by {b.kernel}, for {', '.join(b.layers) or '-'}")
    if constants:
        layers = sorted({name for b in constants for name in b.layers})
        print(f"{len(constants)} weights/biases are dequantized to float32 on every run, for {', '.join(layers)}")
    islands = r.float_islands
    print(f"float islands in the int8 model: {', '.join(layer.node for layer in islands) if islands else 'none'}"
          if r.computes_in_int8 else "the int8 model computes in float throughout")
    if r.kept_in_float:
        print(f"kept in float ({len(r.kept_in_float)}): {', '.join(layer.kept_label for layer in r.kept_in_float)}")
    slower = [layer.node for layer in r.layers if layer.slower_in_int8]
    if slower:
        print(f"slower in int8 ({len(slower)}): {', '.join(slower)}")
        print("  `q8studio quantize ... --keep-slow-float --data DATA` keeps them in float and re-measures.")
    print(r.verdict())


def _print_profile_table(r: ProfileReport) -> None:
    """One row per layer; the name and kernel columns as wide as their longest text (up to NAME_COLUMN_MAX),
    so that a kernel such as "Conv (NCHWc) (float) + QLinearAdd" is read whole, not as "... + QLine"."""
    names = [(layer.node, " + ".join(layer.float_kernels) or "-", " + ".join(layer.int8_kernels) or "-")
             for layer in r.layers]
    headers = ("layer", "float32 kernel", "int8 kernel")
    widths = [min(NAME_COLUMN_MAX, max(len(text) for text in column)) for column in zip(headers, *names)]
    text_columns = " ".join(f"{header:{width}}" for header, width in zip(headers, widths))
    print(f"{text_columns} {'float us':>9} {'int8 us':>8} {'+glue us':>8} {'speed-up':>8} {'MACs':>11}")
    for layer, texts in zip(r.layers, names):
        mark = "  slower in int8" if layer.slower_in_int8 else "  kept in float" if layer.kept_float else ""
        # no speed-up for a layer the int8 model no longer runs (JSON: null); "?" for MACs not known
        speedup = f"{layer.speedup:7.2f}x" if math.isfinite(layer.speedup) else f"{'-':>8}"
        macs = f"{layer.macs:11,}" if layer.macs_known else f"{'?':>11}"
        cells = " ".join(f"{elide_middle(text, width):{width}}" for text, width in zip(texts, widths))
        print(f"{cells} {layer.float_total_us:9.1f} {layer.int8_us:8.1f} {layer.int8_glue_us:8.1f} {speedup} "
              f"{macs}{mark}")


def elide_middle(text: str, width: int) -> str:
    """``text`` whole when it fits, else its two ends around "…": a layer's name ends in its op, a kernel
    list in the last kernel that ran, and both begin with what tells them apart."""
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return f"{text[:width - 1 - tail]}…{text[len(text) - tail:]}"
