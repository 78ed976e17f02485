"""The command-line face of the core: inspect, quantize, evaluate, explain, profile.

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
from typing import TYPE_CHECKING, Callable, TextIO

from .core.errors import Cancelled, Q8Error
from .core.progress import Progress

if TYPE_CHECKING:
    import numpy as np

    from .core.data import Dataset
    from .core.evaluate import Comparison, ErrorAnalysis, LayerError
    from .core.explain import NodeExplanation
    from .core.imagefolder import ImageOptions
    from .core.model import LoadedModel
    from .core.profile import ProfileReport
    from .core.quantize import QuantizeResult
    from .core.recipe import Recipe
    from .core.speedup import KeepFloatOutcome

COMMANDS = ("inspect", "quantize", "evaluate", "explain", "profile")
EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
LAYER_ROWS_SHOWN = 10
IMAGE_OPTIONS = {"preprocess": "--preprocess", "image_size": "--image-size", "layout": "--layout",
                 "color": "--color", "scale": "--scale", "mean": "--mean", "std": "--std"}
CALIBRATION_SAMPLES_FOR_ERRORS = 64
RECIPE_OPTIONS = {"method": "method", "percentile": "percentile", "ema_momentum": "ema_momentum",
                  "granularity": "granularity", "activations": "activation_type",
                  "symmetric_activations": "symmetric_activations", "samples": "samples",
                  "histogram_values": "histogram_values", "exclude": "exclude"}
"""quantize's options that set a recipe field (option dest -> Recipe field). They default to None, not
to the recipe's value: only an option given on the command line overrides a --recipe."""


def run_command(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        args.handler(args)
    except Q8Error as exc:
        print(f"q8studio: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Cancelled):
        print("q8studio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: one line, the traceback only on request
        if os.environ.get("Q8STUDIO_DEBUG"):
            raise
        print(f"q8studio: internal error: {type(exc).__name__}: {exc} (set Q8STUDIO_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        sys.stdout = stdout
    return 0


class _ReaderMayLeave:
    """Standard output that outlives its reader: after ``quantize ... | head`` stops reading, the rest of
    the text is dropped, and the files the command was asked to write (a report after the summary) still are."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_from_now_on()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_from_now_on()

    def _discard_from_now_on(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _output_path(text: str) -> Path:
    """An output path as typed. ``./-`` names a file called '-', but ``Path`` spells it ``-``, which
    outputs refuse as standard output; the absolute form keeps the two apart."""
    path = Path(text)
    return path.absolute() if str(path) == "-" and text != "-" else path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="q8studio", description="Inspect, int8-quantize and compare ONNX models.")
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = _command(sub, "inspect", "graph summary: nodes by op, parameters, quantizable layers", _inspect)
    inspect.add_argument("model", type=Path, help="the ONNX model")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    quantize = _command(sub, "quantize", "calibrate and write an int8 QDQ model", _quantize, _QuantizeHelp)
    quantize.add_argument("model", type=Path, help="the float32 ONNX model")
    quantize.add_argument("--calib", type=Path, required=True, metavar="DATA",
                          help="calibration samples: .npz, .npy or image folder")
    quantize.add_argument("-o", "--output", type=_output_path, required=True, metavar="OUT.onnx",
                          help="where to write the int8 model (never over the source)")
    quantize.add_argument("--recipe", type=Path, metavar="RECIPE.json",
                          help="start from the settings of a saved recipe or report")
    quantize.add_argument("--method", choices=("minmax", "percentile", "entropy", "mse", "ema"),
                          help="how activation ranges are chosen from the calibration statistics")
    quantize.add_argument("--percentile", type=float, metavar="P",
                          help="percentile: the range runs from the (100-P)-th to the P-th percentile")
    quantize.add_argument("--ema-momentum", type=float, metavar="M",
                          help="ema: weight of the running range at each batch (8 samples, or the model's fixed batch)")
    quantize.add_argument("--granularity", choices=("per-tensor", "per-channel"),
                          help="one weight scale per tensor or per output channel")
    quantize.add_argument("--samples", type=int, metavar="N", help="use at most N calibration samples (default: all)")
    quantize.add_argument("--histogram-values", type=int, metavar="N",
                          help="percentile, entropy, mse: values of each sample of an activation binned into its "
                               "histogram (0 = all); min and max always see every value")
    quantize.add_argument("--activations", choices=("uint8", "int8"), help="integer type of the activations")
    quantize.add_argument("--symmetric-activations", action=argparse.BooleanOptionalAction, default=None,
                          help="activation ranges symmetric around 0 (--no-... overrides a recipe)")
    quantize.add_argument("--exclude", nargs="+", default=None, metavar="NODE_NAME", help="keep these nodes in float")
    quantize.add_argument("--report", type=_output_path, metavar="REPORT.json",
                          help="also write the JSON report: recipe, ranges, errors, timings")
    quantize.add_argument("--save-recipe", type=_output_path, metavar="RECIPE.json",
                          help="also write the recipe that reproduces this run")
    quantize.add_argument("--keep-slow-float", action="store_true",
                          help="profile, keep the layers int8 made slower in float, re-quantize and re-measure")
    quantize.add_argument("--data", type=Path, help="samples to time on, for --keep-slow-float")
    quantize.add_argument("--threads", type=int, metavar="N",
                          help="intra-op threads when timing, for --keep-slow-float (default: all cores)")
    _add_image_options(quantize)

    evaluate = _command(sub, "evaluate", "float32 vs int8: accuracy, agreement, error, latency, size", _evaluate)
    _add_model_pair(evaluate)
    evaluate.add_argument("--data", type=Path, required=True,
                          help="samples to compare on: .npz (with labels for accuracy), .npy or image folder")
    evaluate.add_argument("--samples", type=int, metavar="N", help="use at most N samples (default: all)")
    evaluate.add_argument("--latency-runs", type=int, default=50, metavar="N",
                          help="alternating batch-1 runs of each model for the median latency")
    _add_threads(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_image_options(evaluate)

    explain = _command(sub, "explain", "how one int8 layer computes, checked bit for bit against ONNX Runtime", _explain)
    explain.add_argument("int8_model", type=Path, help="the int8 QDQ model")
    explain.add_argument("--node", required=True, metavar="NAME", help="a Conv, Gemm or MatMul node")
    explain.add_argument("--data", type=Path, required=True, help="samples to run the layer on: .npz, .npy or image folder")
    explain.add_argument("--sample", type=int, default=0, metavar="K", help="which sample of DATA")
    explain.add_argument("--float", dest="float_model", type=Path, metavar="FLOAT.onnx",
                         help="also show the float model's value of the same tensor and the layer's SQNR")
    explain.add_argument("--element", type=int, nargs="+", metavar="I",
                         help="the output element to work through, one index per axis of the layer's output "
                              "(N C H W for a Conv, row and column for a Gemm; default: the largest unsaturated one)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_image_options(explain)

    profile = _command(sub, "profile", "per-layer kernels and times of the float and int8 models", _profile)
    _add_model_pair(profile)
    profile.add_argument("--data", type=Path, required=True,
                         help="samples: the first is profiled (.npz, .npy or image folder)")
    profile.add_argument("--runs", type=int, default=200, metavar="N", help="profiled runs of each model")
    profile.add_argument("--latency-runs", type=int, default=50, metavar="N",
                         help="unprofiled alternating runs for the verdict (0 = none)")
    _add_threads(profile)
    profile.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_image_options(profile)
    return parser


def _command(sub: argparse._SubParsersAction, name: str, summary: str, handler: Callable[[argparse.Namespace], None],
             help_formatter: type[argparse.HelpFormatter] | None = None) -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=summary, description=summary,
                             formatter_class=help_formatter or _HelpWithDefaults)
    command.set_defaults(handler=handler)
    return command


def _add_model_pair(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("float_model", type=Path, help="the float32 ONNX model")
    parser.add_argument("int8_model", type=Path, help="its int8 QDQ model")


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="intra-op threads for both models, 0 = all cores")


class _HelpWithDefaults(argparse.HelpFormatter):
    """Ends each option's help with its default as the parser has it; a help that already says its
    default, in words, is left as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "default" in text:
            return text
        default = self._default(action)
        if default in (None, (), argparse.SUPPRESS):
            return text
        if isinstance(default, bool):
            if not isinstance(action, argparse.BooleanOptionalAction):
                return text  # a flag such as --json: off unless given
            default = "on" if default else "off"
        return f"{text} (default: {str(default).replace('%', '%%')})"

    def _default(self, action: argparse.Action) -> object:
        return action.default


class _QuantizeHelp(_HelpWithDefaults):
    """quantize's recipe options default to None (see RECIPE_OPTIONS); their real default is the Recipe
    dataclass's, imported only when help is printed, so that parsing stays free of numpy."""

    def _default(self, action: argparse.Action) -> object:
        if action.dest not in RECIPE_OPTIONS:
            return action.default
        from .core.recipe import Recipe

        return getattr(Recipe(), RECIPE_OPTIONS[action.dest])


def _add_image_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "image folder preprocessing",
        "Settings given neither here nor in --preprocess follow the model's input (size, layout, colour) "
        "or take the defaults below.",
    )
    group.add_argument("--preprocess", type=Path, metavar="JSON", help="preprocessing settings file (any of its keys)")
    group.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize every image to H x W")
    group.add_argument("--layout", choices=("NCHW", "NHWC"), help="where the channel axis goes")
    group.add_argument("--color", choices=("rgb", "bgr", "gray"), help="channel order, or one grey channel")
    # ImagePreprocessing's defaults, written out so that parsing imports no numpy (a test compares them)
    group.add_argument("--scale", type=float, metavar="S", help="pixel multiplier before mean/std (default: 1/255)")
    group.add_argument("--mean", type=float, nargs="+", metavar="M",
                       help="one value, or one per colour channel (default: 0)")
    group.add_argument("--std", type=float, nargs="+", metavar="S",
                       help="one value, or one per colour channel (default: 1)")


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
    from .core.evaluate import analyse_errors
    from .core.fileio import check_outputs
    from .core.session import whole_batches
    from .core.model import load_model
    from .core.quantize import quantize_model
    from .core.recipe import Recipe
    from .core.report import quantize_report, write_report

    recipe = _recipe_from_args(args, Recipe.load(args.recipe) if args.recipe else Recipe())
    _check_quantize_options_apply(args, recipe)
    _require_at_least("--threads", args.threads, 0)
    _check_image_options_apply(args, args.calib, args.data)
    model = load_model(args.model)
    check_outputs(_quantize_outputs(args), _quantize_inputs(args, model))
    calibration = _load_data(args, args.calib, model)
    progress = Progress(callback=_stderr_progress(), min_interval_s=0.5)
    outcome = None
    if args.keep_slow_float:
        outcome = _keep_slow_float(args, model, calibration, recipe, progress)
        result, recipe = outcome.chosen.result, outcome.chosen.result.recipe
    else:
        result = quantize_model(model, calibration, recipe, args.output, progress=progress)
    error_samples = whole_batches(model, min(CALIBRATION_SAMPLES_FOR_ERRORS, result.calibration_samples))
    # against the model as the user gave it, layers named as in `evaluate` (a folded Conv by its BatchNorm)
    errors = analyse_errors(model, result.int8, calibration.limited(error_samples), progress=progress)
    _print_quantize_summary(result, errors)
    if outcome is not None:
        _print_keep_float(outcome)
    try:
        if args.report:
            write_report(quantize_report(result, source=args.model, calibration=calibration, errors=errors,
                                         keep_float=outcome), args.report)
            print(f"report: {args.report}")
        if args.save_recipe:
            recipe.save(args.save_recipe)
            print(f"recipe: {args.save_recipe}")
    except Q8Error as exc:  # the int8 model is complete and checked: keep it, and say so
        raise Q8Error(f"{exc} The int8 model was written to {args.output}.") from None


def _quantize_outputs(args: argparse.Namespace) -> dict[str, Path]:
    named = {"-o": args.output, "--report": args.report, "--save-recipe": args.save_recipe}
    return {option: path for option, path in named.items() if path is not None}


def _quantize_inputs(args: argparse.Namespace, model: LoadedModel) -> dict[str, Path]:
    """Every file the run reads, which no output may replace."""
    inputs = {"the source model": model.path, "the calibration data": args.calib}
    inputs |= {f"the model's external data '{name}'": model.path.parent / name for name in model.external_files}
    if args.data is not None:
        inputs["the --data samples"] = args.data
    if args.recipe is not None:
        inputs["the recipe"] = args.recipe
    if args.preprocess is not None:
        inputs["the preprocessing settings"] = args.preprocess
    return inputs


def _evaluate(args: argparse.Namespace) -> None:
    from .core.evaluate import compare_models
    from .core.report import evaluation_report, to_json

    if args.latency_runs < 1:
        raise Q8Error(f"--latency-runs must be at least 1 (got {args.latency_runs}): the median needs a run.")
    _require_at_least("--threads", args.threads, 0)
    _check_image_options_apply(args, args.data)
    float_model, int8_model = _float_and_int8(args)
    data = _load_data(args, args.data, float_model, samples=args.samples)
    progress = Progress(callback=_stderr_progress(), min_interval_s=0.5)
    comparison = compare_models(
        float_model, int8_model, data, latency_runs=args.latency_runs, threads=args.threads, progress=progress
    )
    if args.json:
        print(to_json(evaluation_report(comparison, args.float_model, args.int8_model, str(args.data))))
    else:
        _print_comparison(comparison)


def _float_and_int8(args: argparse.Namespace) -> tuple[LoadedModel, LoadedModel]:
    """The two models of evaluate and profile, refused when swapped or the same."""
    from .core.model import check_float_and_int8, load_model

    float_model, int8_model = load_model(args.float_model), load_model(args.int8_model)
    if note := check_float_and_int8(float_model, int8_model):
        print(f"q8studio: note: {note}", file=sys.stderr)
    return float_model, int8_model


def _keep_slow_float(
    args: argparse.Namespace, model: object, calibration: object, recipe: Recipe, progress: Progress
) -> KeepFloatOutcome:
    from .core.session import smallest_run
    from .core.speedup import keep_slow_float

    if args.data is None:
        raise Q8Error("--keep-slow-float needs --data DATA: the samples to time both models on.")
    data = _load_data(args, args.data, model, samples=smallest_run(model))  # type: ignore[arg-type]
    return keep_slow_float(
        model, calibration, recipe, args.output, data, threads=args.threads or 0, progress=progress  # type: ignore[arg-type]
    )


def _explain(args: argparse.Namespace) -> None:
    from .core.explain import explain_node
    from .core.model import check_float_and_int8, load_model
    from .core.report import to_json

    _check_image_options_apply(args, args.data)
    int8_model = load_model(args.int8_model)
    float_model = load_model(args.float_model) if args.float_model else None
    if float_model is not None:
        check_float_and_int8(float_model, int8_model)
    data = _load_data(args, args.data, int8_model)
    element = tuple(args.element) if args.element else None
    explanation = explain_node(int8_model, args.node, data, args.sample, float_model, element=element)
    if args.json:
        print(to_json(explanation.to_dict()))
    else:
        _print_explanation(explanation)


def _profile(args: argparse.Namespace) -> None:
    from .core.profile import profile_models
    from .core.report import to_json
    from .core.session import smallest_run

    _require_at_least("--latency-runs", args.latency_runs, 0)
    _require_at_least("--threads", args.threads, 0)
    _check_image_options_apply(args, args.data)
    float_model, int8_model = _float_and_int8(args)
    data = _load_data(args, args.data, float_model, samples=smallest_run(float_model))
    progress = Progress(callback=_stderr_progress(), min_interval_s=0.5)
    report = profile_models(float_model, int8_model, data, runs=args.runs, latency_runs=args.latency_runs,
                            threads=args.threads, progress=progress)
    if args.json:
        print(to_json(report.to_dict()))
    else:
        _print_profile(report)


def _require_at_least(flag: str, value: int | None, lowest: int) -> None:
    if value is not None and value < lowest:
        raise Q8Error(f"{flag} must be at least {lowest} (got {value}).")


def _check_quantize_options_apply(args: argparse.Namespace, recipe: Recipe) -> None:
    """An option that would be dropped without a word is refused: the user believes it acted."""
    from .core.clipping import METHODS, needs_histogram

    if not args.keep_slow_float:
        unused = [flag for flag, value in (("--data", args.data), ("--threads", args.threads)) if value is not None]
        if unused:
            verb = "applies" if len(unused) == 1 else "apply"
            raise Q8Error(f"{' and '.join(unused)} only {verb} with --keep-slow-float (the samples and threads "
                          "it times the models with).")
    with_histogram = tuple(method for method in METHODS if needs_histogram(method))
    for flag, value, methods in (("--percentile", args.percentile, ("percentile",)),
                                 ("--ema-momentum", args.ema_momentum, ("ema",)),
                                 ("--histogram-values", args.histogram_values, with_histogram)):
        if value is not None and recipe.method not in methods:
            raise Q8Error(f"{flag} applies only to --method {_either(methods)}; the method is {recipe.method}.")


def _either(words: tuple[str, ...]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return " or ".join((", ".join(words[:-1]), words[-1])) if len(words) > 1 else words[0]


def _check_image_options_apply(args: argparse.Namespace, *data: Path | None) -> None:
    """Image options act on image folders only; with arrays they would be dropped without a word."""
    given = [flag for dest, flag in IMAGE_OPTIONS.items() if getattr(args, dest) is not None]
    paths = [path for path in data if path is not None]
    if given and paths and all(path.is_file() for path in paths):  # a missing path is load_data's to report
        verb = "applies" if len(given) == 1 else "apply"
        raise Q8Error(f"{', '.join(given)} only {verb} to a folder of images, and {paths[0].name} is a file of "
                      "arrays; leave them out.")


def _recipe_from_args(args: argparse.Namespace, base: Recipe) -> Recipe:
    """``base`` with the recipe options given on the command line over it (Recipe makes --exclude a tuple)."""
    changes = {field: getattr(args, dest) for dest, field in RECIPE_OPTIONS.items()}
    return base.with_changes(**{k: v for k, v in changes.items() if v is not None})


def _preprocessing(args: argparse.Namespace) -> ImageOptions:
    """The --preprocess file's keys with the flags given over them; load_data takes the rest from the model.

    Without --preprocess, a report given as --recipe supplies the preprocessing its run recorded: the
    recipe of an image-folder run is incomplete without it.
    """
    from .core.imagefolder import ImageOptions, records_preprocessing

    recipe = getattr(args, "recipe", None)  # only quantize takes one
    settings = args.preprocess or (recipe if recipe is not None and records_preprocessing(recipe) else None)
    base = ImageOptions.from_json(settings) if settings else ImageOptions()
    changes = {
        "size": tuple(args.image_size) if args.image_size else None,
        "layout": args.layout,
        "color": args.color,
        "scale": args.scale,
        "mean": tuple(args.mean) if args.mean else None,
        "std": tuple(args.std) if args.std else None,
    }
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


def _load_data(args: argparse.Namespace, path: Path, model: LoadedModel, samples: int | None = None) -> Dataset:
    """The data of ``path`` for ``model``; an image folder read with a normalisation nobody gave is noted:
    the model's input tells its size and channels, never the scale, mean and std it was trained with, and
    the wrong ones cost accuracy without an error (the demo's images score 10% instead of 100%)."""
    from .core.data import load_data

    options = _preprocessing(args)
    data = load_data(path, model, samples=samples, preprocessing=options)
    used = data.image_preprocessing
    if used is not None and options.scale is None and options.mean is None and options.std is None:
        print(f"q8studio: note: {path.name} read as {used.describe()}: the normalisation is a default, not the "
              "model's; give the one it was trained with (--preprocess, or --scale/--mean/--std).", file=sys.stderr)
    return data


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
    _print_layers(errors.layers, f"per-layer error on {errors.samples} calibration samples, worst first", "--report")


def _print_comparison(c: Comparison) -> None:
    from .core.evaluate import NotMeasured

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    print(f"{'':22}{'float32':>14}{'int8':>14}")
    print(f"{'top-1 accuracy':22}{pct(c.float32.top1):>14}{pct(c.int8.top1):>14}")
    print(f"{'median latency (ms)':22}{c.float32.latency_ms:>14.3f}{c.int8.latency_ms:>14.3f}   speed-up {c.speedup:.2f}x")
    print(f"{'file size (bytes)':22}{c.float32.file_size:>14,}{c.int8.file_size:>14,}")
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


def _print_keep_float(outcome: KeepFloatOutcome) -> None:
    print(f"speed: float32 {outcome.float_ms:.3f} ms; default int8 {outcome.default.latency_ms:.3f} ms "
          f"(ratio {outcome.ratio_before:.2f}); written int8 {outcome.chosen.latency_ms:.3f} ms "
          f"(ratio {outcome.ratio_after:.2f})")
    if outcome.kept_float:
        print(f"  kept in float because int8 made them slower ({len(outcome.kept_float)}): {', '.join(outcome.kept_float)}")
    if not outcome.chosen.int8.is_quantized:
        print("  nothing is left in int8: the written model computes in float32 throughout")
    print(f"  {outcome.verdict()}")


def _print_explanation(e: NodeExplanation) -> None:
    import numpy as np

    print(f"{e.node}: {e.kind}, run by ONNX Runtime as {e.runtime_kernel} (sample {e.sample})")
    print(f"  input  x  {e.x.dtype:5}  S_x = {_values(e.x.scale)}  Z_x = {_values(e.x.zero_point)}")
    axis = f" per channel (axis {e.w.axis})" if e.w.per_channel else ""
    print(f"  weight w  {e.w.dtype:5}  S_w{axis} = {_values(e.w.scale)}  Z_w = {_values(e.w.zero_point)}")
    if e.bias_q is not None:
        print(f"  bias   b  int32  scale S_x*S_w, zero point 0: {_values(e.bias_q)}")
    if e.y is not None:
        print(f"  output y  {e.y.dtype:5}  S_y = {_values(e.y.scale)}  Z_y = {_values(e.y.zero_point)}")
        m = e.multipliers
        print(f"  M = S_x*S_w/S_y = {_values(np.array([x.real for x in m]))}; M0 = {_values(np.array([x.m0 for x in m]))}, "
              f"n = {_values(np.array([x.shift for x in m]))}; largest |error| of M0*2^-n: "
              f"{max(abs(x.rel_error) for x in m):.1e}")
    for note in e.notes:
        print(f"  note: {note}")
    for check in e.checks:
        print(f"  check: {check.summary()}" + (f" ({check.cause})" if check.cause else ""))
    if e.float_tensor is not None:
        sqnr = "n/a" if e.sqnr_db is None else f"{e.sqnr_db:.2f} dB"
        print(f"  float model: tensor {e.float_tensor}; SQNR of the int8 output against it: {sqnr}")
    ex = e.example
    print(f"worked example: output element {list(ex.index)}")
    padding = "; padding holds Z_x" if not ex.in_bounds.all() else ""
    print(f"  receptive field x_q ({'x'.join(map(str, ex.x_q.shape))}{padding}):")
    _print_grid(ex.x_q)
    print(f"  weights w_q ({'x'.join(map(str, ex.w_q.shape))}):")
    _print_grid(ex.w_q)
    for step in ex.steps():
        print(f"  {step}")


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


def _print_profile(r: ProfileReport) -> None:
    if r.latency_ms:
        print(f"latency (median, alternating, threads {r.threads or 'all'}): float32 {r.latency_ms[0]:.3f} ms, "
              f"int8 {r.latency_ms[1]:.3f} ms")
    print(f"{'layer':34} {'float32 kernel':26} {'int8 kernel':28} {'float us':>9} {'int8 us':>8} {'+glue us':>8} "
          f"{'speed-up':>8} {'MACs':>11}")
    for layer in r.layers:
        mark = "  slower in int8" if layer.slower_in_int8 else ""
        print(f"{layer.node[:34]:34} {' + '.join(layer.float_kernels)[:26] or '-':26} "
              f"{' + '.join(layer.int8_kernels)[:28] or '-':28} {layer.float_total_us:9.1f} {layer.int8_us:8.1f} "
              f"{layer.int8_glue_us:8.1f} {layer.speedup:7.2f}x {layer.macs:11,}{mark}")
    print("(microseconds per run; float us includes the float model's layout kernels charged to the layer, +glue us the "
          "int8 layer's share of Quantize/Dequantize and layout kernels)")
    for name, profile in (("float32", r.float32), ("int8", r.int8)):
        print(f"{name}: kernels {profile.kernel_us:.1f} us of a {profile.run_us:.1f} us profiled run; glue: "
              f"Quantize/Dequantize {profile.qdq_us:.1f} us, layout {profile.layout_us:.1f} us")
    print(f"integer kernels ran {100 * r.integer_mac_share:.1f}% of the multiply-accumulates")
    constants = [b for b in r.boundaries if b.at.startswith("constant")]
    for b in r.boundaries:
        if b not in constants:
            way = "enters int8" if b.enters_int8 else "leaves int8"
            print(f"float32 {way} at {b.tensor} ({b.at}) by {b.kernel}, for {', '.join(b.layers) or '-'}")
    if constants:
        layers = sorted({name for b in constants for name in b.layers})
        print(f"{len(constants)} weights/biases are dequantized to float32 on every run, for {', '.join(layers)}")
    islands = r.float_islands
    print(f"float islands in the int8 model: {', '.join(layer.node for layer in islands) if islands else 'none'}")
    slower = [layer.node for layer in r.layers if layer.slower_in_int8]
    if slower:
        print(f"slower in int8 ({len(slower)}): {', '.join(slower)}")
        print("  `q8studio quantize ... --keep-slow-float --data DATA` keeps them in float and re-measures.")
    print(r.verdict())
