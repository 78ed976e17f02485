"""The command line: every command, its options and their defaults in ``COMMAND --help``.

Parsing imports no numpy: the handlers import the core only when they run.
"""

from __future__ import annotations

import argparse
import difflib
import os
from pathlib import Path
from typing import Callable, NoReturn

from ..core.runcounts import LATENCY_RUNS, PROFILE_RUNS
from .commands import run_evaluate, run_explain, run_inspect, run_profile
from .methods import run_methods
from .quantize import RECIPE_OPTIONS, run_quantize

COMMANDS = ("inspect", "quantize", "methods", "evaluate", "explain", "profile")
METHOD_CHOICES = ("minmax", "percentile", "entropy", "mse", "ema")
"""The clipping methods (core.clipping.METHODS, written out so that parsing imports no numpy; a test compares)."""
THREADS_HELP = "0 = all cores"  # every --threads says so in the same words


def unknown_command(word: str) -> str | None:
    """Why the first argument ``word`` is neither a command nor a model for the window, or None.

    The window takes any other first word as its model, so a mistyped command used to be answered
    with "unrecognized arguments" (its options) or "no display". A word that could be a path (an
    existing file, a suffix such as .onnx, a folder separator) or an option still goes to the
    window, which says what is wrong with it.
    """
    if word in COMMANDS or word.startswith("-") or os.path.lexists(word):
        return None
    if Path(word).suffix or "/" in word or os.sep in word:
        return None
    close = difflib.get_close_matches(word.lower(), COMMANDS, n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return (f"unknown command '{word}'{guess}; the commands are {', '.join(COMMANDS)}, "
            "and q8studio MODEL.onnx opens a model in the window.")


def _output_path(text: str) -> Path:
    """An output path as typed. ``./-`` names a file called '-', but ``Path`` spells it ``-``, which
    outputs refuse as standard output; the absolute form keeps the two apart."""
    path = Path(text)
    return path.absolute() if str(path) == "-" and text != "-" else path


class _OneLineErrors(argparse.ArgumentParser):
    """A usage error in one line on stderr and exit code 2, as every other user error: argparse's own
    prints the whole usage first (14 lines for quantize), above the one line that says what is wrong.
    The command's parsers are made of this class too (add_subparsers takes the parent's)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """The arguments of a command line that starts with a command. An unrecognized argument is the command's
    error, pointing to its --help: the top parser would point to ``q8studio --help``, the window's."""
    parser = build_parser()
    args, unrecognized = parser.parse_known_args(argv)
    if unrecognized:
        _subcommands(parser)[args.command].error(f"unrecognized arguments: {' '.join(unrecognized)}")
    return args


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="q8studio", description="Inspect, int8-quantize and compare ONNX models.")
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = _command(sub, "inspect", "graph summary: nodes by op, parameters, quantizable layers", run_inspect)
    inspect.add_argument("model", type=Path, help="the ONNX model")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    quantize = _command(sub, "quantize", "calibrate and write an int8 QDQ model", run_quantize, _RecipeHelp)
    quantize.add_argument("model", type=Path, help="the float32 ONNX model")
    quantize.add_argument("--calib", type=Path, required=True, metavar="DATA",
                          help="calibration samples: .npz, .npy or image folder")
    quantize.add_argument("-o", "--output", type=_output_path, required=True, metavar="OUT.onnx",
                          help="where to write the int8 model (never over the source; missing folders are made)")
    quantize.add_argument("--recipe", type=Path, metavar="RECIPE.json",
                          help="start from the settings of a saved recipe or report")
    quantize.add_argument("--method", choices=METHOD_CHOICES,
                          help="how activation ranges are chosen from the calibration statistics")
    _add_recipe_options(quantize)
    quantize.add_argument("--report", type=_output_path, metavar="REPORT.json",
                          help="also write the JSON report: recipe, ranges, errors, timings")
    quantize.add_argument("--save-recipe", type=_output_path, metavar="RECIPE.json",
                          help="also write the recipe that reproduces this run")
    quantize.add_argument("--keep-slow-float", action="store_true",
                          help="profile, keep the layers int8 made slower in float, re-quantize and re-measure")
    quantize.add_argument("--data", type=Path, help="samples to time on, for --keep-slow-float")
    # default None, not 0: a --threads given without --keep-slow-float is refused; the run takes None as 0
    quantize.add_argument("--threads", type=int, metavar="N",
                          help=f"intra-op threads when timing, for --keep-slow-float, {THREADS_HELP} (default: 0)")
    _add_image_options(quantize)

    methods = _command(sub, "methods", "every clipping method's int8 model against float32, from one calibration",
                       run_methods, _RecipeHelp)
    methods.add_argument("model", type=Path, help="the float32 ONNX model")
    methods.add_argument("--calib", type=Path, required=True, metavar="DATA",
                         help="calibration samples: .npz, .npy or image folder")
    methods.add_argument("--data", type=Path,
                         help="samples to compare on, with labels for accuracy (default: the calibration samples)")
    methods.add_argument("--eval-samples", type=int, metavar="N", help="compare on at most N samples (default: all)")
    methods.add_argument("--methods", nargs="+", choices=METHOD_CHOICES, default=list(METHOD_CHOICES),
                         metavar="METHOD", help=f"the clipping methods to try, of {', '.join(METHOD_CHOICES)} (default: all)")
    methods.add_argument("--recipe", type=Path, metavar="RECIPE.json",
                         help="start from the settings of a saved recipe or report (its method is not used)")
    _add_recipe_options(methods)
    methods.add_argument("--json", action="store_true", help="print JSON instead of text")
    methods.set_defaults(method=None)  # each method tried sets its own
    _add_image_options(methods)

    evaluate = _command(sub, "evaluate", "float32 vs int8: accuracy, agreement, error, latency, size", run_evaluate)
    _add_model_pair(evaluate)
    evaluate.add_argument("--data", type=Path, required=True,
                          help="samples to compare on: .npz (with labels for accuracy), .npy or image folder")
    evaluate.add_argument("--samples", type=int, metavar="N", help="use at most N samples (default: all)")
    evaluate.add_argument("--latency-runs", type=int, default=LATENCY_RUNS, metavar="N",
                          help="alternating batch-1 runs of each model for the median latency")
    _add_threads(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_image_options(evaluate)

    explain = _command(sub, "explain", "how one int8 layer computes, checked bit for bit against ONNX Runtime", run_explain)
    explain.add_argument("int8_model", type=Path, help="the int8 QDQ model")
    explain.add_argument("--node", required=True, metavar="NAME",
                         help="a Conv, Gemm, MatMul, Add, Mul, GlobalAveragePool, MaxPool, AveragePool, Sigmoid, "
                              "LeakyRelu, Concat or Softmax node, or one that moves values (Reshape, Flatten, "
                              "Squeeze, Unsqueeze, Transpose, Slice, Gather); with "
                              "--float, also a node quantization removed (a BatchNormalization, a Relu) to explain "
                              "the layer computing it")
    explain.add_argument("--data", type=Path, required=True, help="samples to run the layer on: .npz, .npy or image folder")
    explain.add_argument("--sample", type=int, default=0, metavar="K", help="which sample of DATA")
    explain.add_argument("--float", dest="float_model", type=Path, metavar="FLOAT.onnx",
                         help="also show the float model's value of the same tensor and the layer's SQNR, "
                              "and find the layer computing a removed node")
    explain.add_argument("--element", type=int, nargs="+", metavar="I",
                         help="the output element to work through, one index per axis of the layer's output "
                              "(N C H W for a Conv, row and column for a Gemm; default: the largest unsaturated one)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_image_options(explain)

    profile = _command(sub, "profile", "per-layer kernels and times of the float and int8 models", run_profile)
    _add_model_pair(profile)
    profile.add_argument("--data", type=Path, required=True,
                         help="samples: the first is profiled (.npz, .npy or image folder)")
    profile.add_argument("--runs", type=int, default=PROFILE_RUNS, metavar="N", help="profiled runs of each model")
    profile.add_argument("--latency-runs", type=int, default=LATENCY_RUNS, metavar="N",
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


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The options that set a recipe field but the method (see RECIPE_OPTIONS), shared by quantize and methods."""
    parser.add_argument("--percentile", type=float, metavar="P",
                        help="percentile: the range runs from the (100-P)-th to the P-th percentile")
    parser.add_argument("--ema-momentum", type=float, metavar="M",
                        help="ema: weight of the running range at each sample")
    parser.add_argument("--granularity", choices=("per-tensor", "per-channel"),
                        help="one weight scale per tensor or per output channel")
    parser.add_argument("--samples", type=int, metavar="N", help="use at most N calibration samples (default: all)")
    parser.add_argument("--histogram-values", type=int, metavar="N",
                        help="percentile, entropy, mse: values of each sample of an activation binned into its "
                             "histogram (0 = all); the max sees every value, the min too but for large activations "
                             "that cannot be negative (their range starts at 0 anyway)")
    parser.add_argument("--activations", choices=("uint8", "int8"), help="integer type of the activations")
    parser.add_argument("--symmetric-activations", action=argparse.BooleanOptionalAction, default=None,
                        help="activation ranges symmetric around 0 (--no-... overrides a recipe)")
    parser.add_argument("--exclude", nargs="+", action="extend", default=None, metavar="NODE_NAME",
                        help="keep these nodes in float (repeatable)")


def _add_model_pair(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("float_model", type=Path, help="the float32 ONNX model")
    parser.add_argument("int8_model", type=Path, help="its int8 QDQ model")


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help=f"intra-op threads for both models, {THREADS_HELP}")


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


class _RecipeHelp(_HelpWithDefaults):
    """The recipe options of quantize and methods default to None (see RECIPE_OPTIONS); their real default is
    the Recipe dataclass's, imported only when help is printed, so that parsing stays free of numpy."""

    def _default(self, action: argparse.Action) -> object:
        if action.dest not in RECIPE_OPTIONS:
            return action.default
        from ..core.recipe import Recipe

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
