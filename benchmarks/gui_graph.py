"""GUI: time to open a big graph — load_model + layout + scene build + first paint.

Builds BERT-like synthetic ONNX models (name scopes '/encoder/layer.N/attention/self/...',
residual joins, a shape sub-graph per layer and an attention mask used by every layer) of
about 500, 2,000 and 10,000 nodes, and opens each in a GraphView with the default collapsed
scopes and with everything expanded. Prints a table and records it in benchmarks/RESULTS.md.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_graph.py [--sizes 500 2000 10000] [--repeat 3] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from collections.abc import Callable
from functools import partial

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from results_file import measured_with, record_section  # noqa: E402
from q8studio.core.layout import default_collapsed, layout_graph  # noqa: E402
from q8studio.core.model import load_model  # noqa: E402
from q8studio.gui.graph_view import GraphView  # noqa: E402

HIDDEN, HEADS, FFN = 16, 2, 64
NODES_PER_LAYER = 41
SECTION = "GUI: graph open + layout + first paint"


class _Builder:
    """Collects nodes and initializers; names every node the way torch.onnx.export scopes them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * 0.1).astype(np.float32))

    def op(self, op_type: str, scope: str, inputs: list[str], suffix: str = "", **attrs: object) -> str:
        name = f"{scope}/{op_type}{suffix}"
        output = name.lstrip("/").replace("/", ".") + "_out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output


def _layer(b: _Builder, h: str, mask: str, i: int, axes0: str) -> str:
    p = f"/encoder/layer.{i}"
    att = f"{p}/attention/self"
    head_dim = HIDDEN // HEADS
    shape = b.op("Shape", att, [h])
    gathered = [b.op("Gather", att, [shape, b.const(f"{att}.idx{d}", np.array(d))], f"_{d}", axis=0) for d in (0, 1)]
    dims = [b.op("Unsqueeze", att, [g, axes0], f"_{d}") for d, g in enumerate(gathered)]
    heads = b.const(f"{att}.heads", np.array([HEADS, head_dim]))
    shape4 = b.op("Concat", att, [*dims, heads], axis=0)
    proj = {}
    for what, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
        scope = f"{att}/{what}"
        y = b.op("Add", scope, [b.op("MatMul", scope, [h, b.weight(f"{scope}.w", (HIDDEN, HIDDEN))]),
                                b.weight(f"{scope}.b", (HIDDEN,))])
        proj[what] = b.op("Transpose", att, [b.op("Reshape", att, [y, shape4], f"_{what}")], f"_{what}", perm=perm)
    scores = b.op("MatMul", att, [proj["query"], proj["key"]])
    scaled = b.op("Div", att, [scores, b.const(f"{att}.scale", np.float32(np.sqrt(head_dim)))])
    probs = b.op("Softmax", att, [b.op("Add", att, [scaled, mask], "_mask")], axis=-1)
    context = b.op("Transpose", att, [b.op("MatMul", att, [probs, proj["value"]], "_ctx")], "_ctx", perm=[0, 2, 1, 3])
    shape3 = b.op("Concat", att, [*dims, b.const(f"{att}.hidden", np.array([HIDDEN]))], "_out", axis=0)
    context = b.op("Reshape", att, [context, shape3], "_out")
    h = _dense_residual_norm(b, f"{p}/attention/output", context, h, HIDDEN)
    inter = f"{p}/intermediate"
    y = b.op("Add", inter, [b.op("MatMul", inter, [h, b.weight(f"{inter}.w", (HIDDEN, FFN))]), b.weight(f"{inter}.b", (FFN,))])
    erf = b.op("Erf", inter, [b.op("Div", inter, [y, b.const(f"{inter}.sqrt2", np.float32(np.sqrt(2)))])])
    gelu = b.op("Mul", inter, [b.op("Mul", inter, [y, b.op("Add", inter, [erf, b.const(f"{inter}.one", np.float32(1))], "_1")]),
                               b.const(f"{inter}.half", np.float32(0.5))], "_1")
    return _dense_residual_norm(b, f"{p}/output", gelu, h, FFN)


def _dense_residual_norm(b: _Builder, scope: str, x: str, residual: str, width: int) -> str:
    y = b.op("MatMul", scope, [x, b.weight(f"{scope}.w", (width, HIDDEN))])
    y = b.op("Add", scope, [y, b.weight(f"{scope}.b", (HIDDEN,))])
    y = b.op("Add", scope, [y, residual], "_residual")
    return b.op("LayerNormalization", f"{scope}/LayerNorm", [y, b.const(f"{scope}.g", np.ones(HIDDEN, np.float32)),
                                                              b.const(f"{scope}.beta", np.zeros(HIDDEN, np.float32))], axis=-1)


def synthetic_model(n_nodes: int, seed: int = 0) -> onnx.ModelProto:
    """A BERT-like encoder with about ``n_nodes`` nodes (whole layers of 41 nodes each)."""
    b = _Builder(np.random.default_rng(seed))
    axes0 = b.const("axes0", np.array([0]))
    m = b.op("Unsqueeze", "/extend_mask", ["mask", b.const("axes1", np.array([1]))])
    m = b.op("Unsqueeze", "/extend_mask", [m, b.const("axes2", np.array([2]))], "_1")
    m = b.op("Sub", "/extend_mask", [b.const("one", np.float32(1)), m])
    mask = b.op("Mul", "/extend_mask", [m, b.const("neg", np.float32(-1e4))])
    h = b.op("LayerNormalization", "/embeddings/LayerNorm", ["x", b.const("emb.g", np.ones(HIDDEN, np.float32)),
                                                               b.const("emb.b", np.zeros(HIDDEN, np.float32))], axis=-1)
    for i in range(max(1, round((n_nodes - 9) / NODES_PER_LAYER))):
        h = _layer(b, h, mask, i, axes0)
    first = b.op("Gather", "/pooler", [h, b.const("pool.idx", np.array(0))], axis=1)
    pooled = b.op("Tanh", "/pooler", [b.op("MatMul", "/pooler/dense", [first, b.weight("pool.w", (HIDDEN, HIDDEN))])])
    logits = b.op("MatMul", "/classifier", [pooled, b.weight("cls.w", (HIDDEN, 2))])
    graph = helper.make_graph(
        b.nodes, "synthetic_bert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", HIDDEN]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "S"])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["B", 2])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _wait_ready(view: GraphView, action: Callable[[], None]) -> None:
    """Run an action that (re)lays out the view, idling in an event loop (as the app does) until the scene is up."""
    loop = QEventLoop()
    ready: list[bool] = []
    view.layout_ready.connect(lambda: (ready.append(True), loop.quit()))
    action()
    if not ready:
        loop.exec()
    view.layout_ready.disconnect()


def measure(app: QApplication, n_nodes: int, folder: Path) -> list[dict[str, object]]:
    """One row per mode: the default collapsed view as opened, then Expand all."""
    path = folder / f"synthetic_{n_nodes}.onnx"
    onnx.save(synthetic_model(n_nodes), str(path))
    load = min(_timed(lambda: load_model(path)) for _ in range(2))
    model = load_model(path)
    graph = model.graph
    view = GraphView()
    view.resize(1280, 800)
    view.show()
    app.processEvents()
    steps = {"collapsed": (default_collapsed(graph), lambda: view.set_model(model)),
             "expanded": (frozenset(), view.expand_all)}
    rows = []
    for mode, (collapsed, action) in steps.items():
        layout_s = _timed(partial(layout_graph, graph, collapsed=collapsed))
        view_s = _timed(partial(_wait_ready, view, action))
        paint_s = _timed(view.grab)
        view.fit()
        fit_paint_s = _timed(view.grab)
        rows.append({"nodes": len(graph.nodes), "mode": mode, "boxes": len(view.box_items()), "load": load,
                     "layout": layout_s, "view": view_s, "paint": paint_s, "fit_paint": fit_paint_s,
                     "total": (load if mode == "collapsed" else 0.0) + view_s + paint_s,
                     "target": 1.0 if n_nodes <= 2000 else 3.0})
    view.close()
    view.deleteLater()
    app.processEvents()
    return rows


def machine() -> str:
    return f"{measured_with('PySide6-Essentials', 'numpy', 'onnx')}; QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', '')}"


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| nodes | mode | boxes | load_model s | layout alone s | layout + scene s | first paint s | total s | target s "
             "| paint at Fit s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        verdict = "" if r["total"] <= r["target"] else " (missed)"
        lines.append(f"| {r['nodes']:,} | {r['mode']} | {r['boxes']:,} | {r['load']:.3f} | {r['layout']:.3f} | "
                     f"{r['view']:.3f} | {r['paint']:.3f} | **{r['total']:.3f}** | {r['target']:.0f}{verdict} | "
                     f"{r['fit_paint']:.3f} |")
    return "\n".join(lines)



def pyside_drops_none_references() -> bool:
    """PySide6 6.12.0 on CPython 3.11 releases a reference to None on every void Qt call, and the
    process aborts ("none_dealloc") after a few thousand: a run would die mid-way."""
    from PySide6.QtCore import QObject

    probe, before = QObject(), sys.getrefcount(None)
    for _ in range(100):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest is kept (the machine is shared)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if pyside_drops_none_references():
        print(f"PySide6 {version('PySide6-Essentials')} loses references to None on this Python and would crash "
              "mid-run; install PySide6-Essentials<6.12.", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            runs = [measure(app, n, Path(folder)) for _ in range(args.repeat)]
            rows += [min(same_mode, key=lambda r: r["total"]) for same_mode in zip(*runs)]
    when = time.strftime("%Y-%m-%d %H:%M")
    text = (f"`python benchmarks/gui_graph.py` on {when}, fastest of {args.repeat} runs: {machine()}.\n\n"
            "Synthetic BERT-like graphs (41 nodes per encoder layer, scopes `/encoder/layer.N/attention/self/...`, "
            "residual joins, an attention mask used by every layer). *collapsed*: the view as opened (default "
            "collapsed scopes; total = load_model + set_model + first paint). *expanded*: Expand all on that view "
            "(total = relayout + scene + first paint). layout alone = `core.layout.layout_graph` by itself; layout + "
            "scene = set_model / Expand all until the new scene is up (from 2,500 nodes the layout runs on a worker "
            "thread); first paint = "
            "`GraphView.grab()` at the opening zoom (top of the graph, readable); paint at Fit = one more grab after "
            "Fit (whole graph, the level-of-detail drawing).\n\n" + table(rows))
    print(text)
    if not args.no_record:
        record_section(SECTION, f"## {SECTION}\n\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
