"""The command-line face of the core: inspect, quantize, evaluate.

User errors print one line on stderr and exit 2; Ctrl-C exits 130. Heavy modules are
imported inside the commands so ``q8studio --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from .core.errors import Cancelled, Q8Error
from .core.progress import Progress

if TYPE_CHECKING:
    from .core.evaluate import Comparison, ErrorAnalysis, LayerError
    from .core.imagefolder import ImagePreprocessing
    from .core.quantize import QuantizeResult
    from .core.recipe import Recipe

COMMANDS = ("inspect", "quantize", "evaluate")
EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
LAYER_ROWS_SHOWN = 10
CALIBRATION_SAMPLES_FOR_ERRORS = 64


def run_command(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except Q8Error as exc:
        print(f"q8studio: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Cancelled):
        print("q8studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("Q8STUDIO_DEBUG"):
            raise
        print(f"q8studio: internal error: {type(exc).__name__}: {exc} (set Q8STUDIO_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="q8studio", description="Inspect, int8-quantize and compare ONNX models.")
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = sub.add_parser("inspect", help="graph summary: nodes by op, parameters, quantizable layers")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(handler=_inspect)

    quantize = sub.add_parser("quantize", help="calibrate and write an int8 QDQ model")
    quantize.add_argument("model", type=Path)
    quantize.add_argument("--calib", type=Path, required=True, metavar="DATA", help=".npz, .npy or image folder")
    quantize.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.onnx")
    quantize.add_argument("--recipe", type=Path, help="start from the settings of a saved recipe or report")
    quantize.add_argument("--method", choices=("minmax", "percentile", "entropy", "mse", "ema"))
    quantize.add_argument("--percentile", type=float)
    quantize.add_argument("--ema-momentum", type=float)
    quantize.add_argument("--granularity", choices=("per-tensor", "per-channel"))
    quantize.add_argument("--samples", type=int, metavar="N", help="use at most N calibration samples")
    quantize.add_argument("--activations", choices=("uint8", "int8"))
    quantize.add_argument("--symmetric-activations", action="store_true", default=None)
    quantize.add_argument("--exclude", nargs="+", default=None, metavar="NODE_NAME", help="keep these nodes in float")
    quantize.add_argument("--report", type=Path, metavar="REPORT.json")
    quantize.add_argument("--save-recipe", type=Path, metavar="RECIPE.json")
    _add_image_options(quantize)
    quantize.set_defaults(handler=_quantize)

    evaluate = sub.add_parser("evaluate", help="float32 vs int8: accuracy, agreement, error, latency, size")
    evaluate.add_argument("float_model", type=Path)
    evaluate.add_argument("int8_model", type=Path)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--samples", type=int, metavar="N")
    evaluate.add_argument("--latency-runs", type=int, default=50)
    evaluate.add_argument("--threads", type=int, default=0, help="intra-op threads for both models (0 = all cores)")
    evaluate.add_argument("--json", action="store_true")
    _add_image_options(evaluate)
    evaluate.set_defaults(handler=_evaluate)
    return parser


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("image folder preprocessing")
    group.add_argument("--preprocess", type=Path, metavar="JSON", help="preprocessing settings file")
    group.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    group.add_argument("--layout", choices=("NCHW", "NHWC"))
    group.add_argument("--color", choices=("rgb", "bgr", "gray"))
    group.add_argument("--scale", type=float)
    group.add_argument("--mean", type=float, nargs="+")
    group.add_argument("--std", type=float, nargs="+")


def _inspect(args: argparse.Namespace) -> None:
    from .core.model import load_model

    summary = load_model(args.model).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['path']}  (opset {summary['opset']}, {summary['file_size_bytes']:,} bytes)")
    for kind in ("inputs", "outputs"):
        for t in summary[kind]:  # type: ignore[union-attr]
            print(f"  {kind[:-1]:6} {t['name']}  {t['dtype']} {t['shape']}")
    print(f"  nodes  {summary['node_count']}   parameters {summary['parameters']:,}")
    ops = ", ".join(f"{op} {n}" for op, n in summary["ops"].items())  # type: ignore[union-attr]
    print(f"  ops    {ops}")
    quantizable = summary["quantizable_nodes"]
    print(f"  quantizable layers ({len(quantizable)}): {', '.join(quantizable)}")  # type: ignore[arg-type]


def _quantize(args: argparse.Namespace) -> None:
    from .core.data import load_data
    from .core.evaluate import analyse_errors
    from .core.model import load_model
    from .core.quantize import quantize_model
    from .core.recipe import Recipe
    from .core.report import quantize_report, write_report

    recipe = _recipe_from_args(args, Recipe.load(args.recipe) if args.recipe else Recipe())
    model = load_model(args.model)
    calibration = load_data(args.calib, model, preprocessing=_preprocessing(args))
    progress = Progress(callback=_stderr_progress(), min_interval_s=0.5)
    result = quantize_model(model, calibration, recipe, args.output, progress=progress)
    int8 = load_model(result.output_path)
    errors = analyse_errors(
        result.prepared.model, int8, calibration.limited(CALIBRATION_SAMPLES_FOR_ERRORS), progress=progress
    )
    _print_quantize_summary(result, errors)
    if args.report:
        write_report(quantize_report(result, source=args.model, calibration=str(args.calib), errors=errors), args.report)
        print(f"report: {args.report}")
    if args.save_recipe:
        recipe.save(args.save_recipe)
        print(f"recipe: {args.save_recipe}")


def _evaluate(args: argparse.Namespace) -> None:
    from .core.data import load_data
    from .core.evaluate import compare_models
    from .core.model import load_model
    from .core.report import evaluation_report, to_json

    float_model = load_model(args.float_model)
    int8_model = load_model(args.int8_model)
    data = load_data(args.data, float_model, samples=args.samples, preprocessing=_preprocessing(args))
    progress = Progress(callback=_stderr_progress(), min_interval_s=0.5)
    comparison = compare_models(
        float_model, int8_model, data, latency_runs=args.latency_runs, threads=args.threads, progress=progress
    )
    if args.json:
        print(to_json(evaluation_report(comparison, args.float_model, args.int8_model, str(args.data))))
    else:
        _print_comparison(comparison)


def _recipe_from_args(args: argparse.Namespace, base: Recipe) -> Recipe:
    changes = {
        "method": args.method,
        "percentile": args.percentile,
        "ema_momentum": args.ema_momentum,
        "granularity": args.granularity,
        "activation_type": args.activations,
        "symmetric_activations": args.symmetric_activations,
        "samples": args.samples,
        "exclude": tuple(args.exclude) if args.exclude is not None else None,
    }
    return base.with_changes(**{k: v for k, v in changes.items() if v is not None})


def _preprocessing(args: argparse.Namespace) -> ImagePreprocessing | None:
    from .core.imagefolder import ImagePreprocessing

    base = ImagePreprocessing.from_json(args.preprocess) if args.preprocess else None
    changes = {
        "size": tuple(args.image_size) if args.image_size else None,
        "layout": args.layout,
        "color": args.color,
        "scale": args.scale,
        "mean": tuple(args.mean) if args.mean else None,
        "std": tuple(args.std) if args.std else None,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if base is None and not changes:
        return None
    return replace(base or ImagePreprocessing(), **changes)


def _stderr_progress() -> Callable[[str, int, int], None]:
    def show(stage: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            end = "\n" if done >= total else ""
            print(f"\r{stage}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def _print_quantize_summary(result: QuantizeResult, errors: ErrorAnalysis) -> None:
    recipe = result.recipe
    print(f"wrote {result.output_path}  ({recipe.method}, {recipe.granularity}, activations {recipe.activation_type})")
    for note in result.prepared.notes:
        print(f"  {note}")
    print(f"  calibrated on {result.calibration_samples} samples in {result.timings['calibrate_s']:.2f} s")
    if result.float_nodes:
        print(f"  kept in float ({len(result.float_nodes)}):")
        for node in result.float_nodes:
            print(f"    {node.name} [{node.op_type}]: {node.reason}")
    _print_layers(errors.layers, f"per-layer error on {errors.samples} calibration samples, worst first")


def _print_comparison(c: Comparison) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    print(f"{'':22}{'float32':>14}{'int8':>14}")
    print(f"{'top-1 accuracy':22}{pct(c.float32.top1):>14}{pct(c.int8.top1):>14}")
    print(f"{'median latency (ms)':22}{c.float32.latency_ms:>14.3f}{c.int8.latency_ms:>14.3f}   speed-up {c.speedup:.2f}x")
    print(f"{'file size (bytes)':22}{c.float32.file_size:>14,}{c.int8.file_size:>14,}")
    print(f"top-1 agreement: {pct(c.errors.agreement)} over {c.errors.samples} samples")
    for name, acc in c.errors.outputs.items():
        print(f"output {name}: SQNR {acc.sqnr_db:.2f} dB, cosine {acc.cosine:.5f}, max |error| {acc.max_abs:.4g}")
    _print_layers(c.errors.layers, "per-layer error, worst first")


def _print_layers(layers: list[LayerError], title: str) -> None:
    if not layers:
        return
    print(f"{title}:")
    print(f"  {'SQNR dB':>9} {'MSE':>11} {'cosine':>9}  layer")
    for row in layers[:LAYER_ROWS_SHOWN]:
        print(f"  {row.sqnr_db:>9.2f} {row.mse:>11.4g} {row.cosine:>9.5f}  {row.node} [{row.op_type}] -> {row.tensor}")
    if len(layers) > LAYER_ROWS_SHOWN:
        print(f"  ... {len(layers) - LAYER_ROWS_SHOWN} more (use --json / --report for all)")
