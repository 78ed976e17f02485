"""``q8studio methods``: every clipping method's int8 model against float32, from one calibration."""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING

from ..core.errors import Q8Error
from .inputs import IMAGE_OPTIONS, check_image_options_apply, read_data, require_at_least
from .printing import elide_middle
from .quantize import RECIPE_OPTIONS, either, option_no_method_reads, recipe_from_args
from .streams import terminal_progress

if TYPE_CHECKING:
    from ..core.methods import MethodComparison

MAX_LAYER_NAME = 48


def run_methods(args: argparse.Namespace) -> None:
    from ..core.environment import environment
    from ..core.methods import compare_methods
    from ..core.model import load_model
    from ..core.recipe import Recipe
    from ..core.report import to_json

    methods = tuple(dict.fromkeys(args.methods))
    recipe = recipe_from_args(args, Recipe.load(args.recipe) if args.recipe else Recipe())
    unread = option_no_method_reads(args, methods)
    if unread is not None:
        flag, readers = unread
        raise Q8Error(f"{flag} applies only to {either(readers)}, which --methods leaves out.")
    require_at_least("--eval-samples", args.eval_samples, 1)
    check_image_options_apply(args, args.calib, args.data)
    model = load_model(args.model)
    calibration = read_data(args, args.calib, model)
    evaluation = (read_data(args, args.data, model, samples=args.eval_samples) if args.data is not None
                  else calibration.limited(args.eval_samples or recipe.samples))
    progress = terminal_progress()
    comparison = compare_methods(model, calibration, evaluation, recipe, methods=methods, progress=progress)
    if args.json:
        print(to_json({**comparison.to_dict(), "data": str(args.data or args.calib), "environment": environment()}))
    else:
        print_methods(comparison, args)


def print_methods(comparison: MethodComparison, args: argparse.Namespace) -> None:
    recipe = comparison.recipe
    on = (f"{comparison.samples} samples of {args.data.name}" if args.data is not None
          else f"{comparison.samples} calibration samples (give --data for samples calibration did not see)")
    print(f"each clipping method's int8 model against float32 on {on}")
    print(f"  {recipe.granularity} weights, {recipe.activation_type} activations; one calibration, shared")
    labelled = comparison.float_top1 is not None
    output = comparison.scores[0].output
    print(f"  {'method':<11}{'int8 top-1' if labelled else '':>11}{'agreement':>11}{'SQNR dB':>9}  worst layer (SQNR dB)")
    for score in comparison.scores:
        top1 = f"{100 * score.int8_top1:.2f}%" if score.int8_top1 is not None else ""
        agreement = f"{100 * score.agreement:.2f}%" if score.agreement is not None else "n/a"
        sqnr = f"{score.output_sqnr_db:.2f}" if score.output_sqnr_db is not None else "n/a"
        worst = score.worst_layer
        layer = f"{elide_middle(worst.node, MAX_LAYER_NAME)} ({worst.sqnr_db:.2f})" if worst is not None else ""
        print(f"  {score.method:<11}{top1:>11}{agreement:>11}{sqnr:>9}  {layer}")
    float_top1 = f"float32 top-1 {100 * comparison.float_top1:.2f}%; " if labelled else ""
    decided = "int8 top-1" if labelled else "agreement"
    best = comparison.best.method
    print(f"{float_top1}SQNR of output {output!r}")
    print(f"best here: {best} (highest {decided}, then SQNR); chosen on these samples, so judge it on others too")
    print(f"to write it: {quantize_command(args, best)}")


def quantize_command(args: argparse.Namespace, method: str) -> str:
    """The ``q8studio quantize`` command that writes ``method``'s model as it was compared here: the
    same calibration data, recipe file and options (those of another method's left out, since
    quantize refuses them), into ``<model>.int8.onnx`` in the working directory."""
    from ..core.recipe import METHOD_SETTINGS

    words = ["q8studio", "quantize", str(args.model), "--calib", str(args.calib), "--method", method]
    if args.recipe is not None:
        words += ["--recipe", str(args.recipe)]
    given = {dest: getattr(args, dest) for dest in [*RECIPE_OPTIONS, *IMAGE_OPTIONS] if dest != "method"}
    for dest, value in given.items():
        if value is None or method not in METHOD_SETTINGS.get(dest, (method,)):
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        else:
            words += [flag, *map(str, value if isinstance(value, list) else [value])]
    words += ["-o", f"{args.model.stem}.int8.onnx"]
    return shlex.join(words)
