"""``q8studio inspect``, ``evaluate``, ``explain`` and ``profile``: load, run the core, print or dump JSON."""

from __future__ import annotations

import argparse
import json

from ..core.errors import Q8Error
from .inputs import check_image_options_apply, float_and_int8, read_data, require_at_least
from .printing import print_comparison, print_explanation, print_profile
from .streams import terminal_progress


def run_inspect(args: argparse.Namespace) -> None:
    from ..core.model import load_model

    summary = load_model(args.model).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['path']}  (opset {summary['opset']}, {summary['file_size_bytes']:,} bytes)")
    for note in summary["notes"]:  # type: ignore[union-attr]
        print(f"  {note}")
    for kind in ("inputs", "outputs"):
        for t in summary[kind]:  # type: ignore[union-attr]
            print(f"  {kind[:-1]:6} {t['name']}  {t['dtype']} {t['shape']}")
    print(f"  nodes  {summary['node_count']}   parameters {summary['parameters']:,}")
    ops = ", ".join(f"{op} {n}" for op, n in summary["ops"].items())  # type: ignore[union-attr]
    print(f"  ops    {ops}")
    if summary["already_quantized"]:
        print("  quantizable layers: none, the model is already quantized")
        return
    quantizable = summary["quantizable_nodes"]
    print(f"  quantizable layers ({len(quantizable)}): {', '.join(quantizable)}")  # type: ignore[arg-type]


def run_evaluate(args: argparse.Namespace) -> None:
    from ..core.evaluate import compare_models
    from ..core.report import evaluation_report, to_json

    if args.latency_runs < 1:
        raise Q8Error(f"--latency-runs must be at least 1 (got {args.latency_runs}): the median needs a run.")
    require_at_least("--threads", args.threads, 0)
    check_image_options_apply(args, args.data)
    float_model, int8_model = float_and_int8(args)
    data = read_data(args, args.data, float_model, samples=args.samples)
    progress = terminal_progress()
    comparison = compare_models(
        float_model, int8_model, data, latency_runs=args.latency_runs, threads=args.threads, progress=progress
    )
    if args.json:
        print(to_json(evaluation_report(comparison, args.float_model, args.int8_model, str(args.data))))
    else:
        print_comparison(comparison)


def run_explain(args: argparse.Namespace) -> None:
    from ..core.explain import explain_node
    from ..core.model import load_model
    from ..core.refusals import check_float_and_int8
    from ..core.report import to_json

    check_image_options_apply(args, args.data)
    int8_model = load_model(args.int8_model)
    float_model = load_model(args.float_model) if args.float_model else None
    if float_model is not None:
        check_float_and_int8(float_model, int8_model)
    graph = int8_model.graph
    if float_model is None and args.node not in graph.by_name and not graph.fused_from(args.node):
        raise Q8Error(f"The int8 model has no node named '{args.node}'. For a node quantization removed (a "
                      "BatchNormalization, a Relu), add --float FLOAT.onnx to explain the layer computing it.")
    data = read_data(args, args.data, int8_model)
    element = tuple(args.element) if args.element else None
    explanation = explain_node(int8_model, args.node, data, args.sample, float_model, element=element)
    if args.json:
        print(to_json(explanation.to_dict()))
    else:
        print_explanation(explanation)


def run_profile(args: argparse.Namespace) -> None:
    from ..core.profile import profile_models
    from ..core.report import to_json
    from ..core.session import smallest_run

    require_at_least("--latency-runs", args.latency_runs, 0)
    require_at_least("--threads", args.threads, 0)
    check_image_options_apply(args, args.data)
    float_model, int8_model = float_and_int8(args)
    data = read_data(args, args.data, float_model, samples=smallest_run(float_model))
    progress = terminal_progress()
    report = profile_models(float_model, int8_model, data, runs=args.runs, latency_runs=args.latency_runs,
                            threads=args.threads, progress=progress)
    if args.json:
        print(to_json(report.to_dict()))
    else:
        print_profile(report)
