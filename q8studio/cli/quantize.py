"""``q8studio quantize``: the recipe from a file and the options over it, the run, and what it writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import Q8Error
from ..core.progress import Progress
from .inputs import check_image_options_apply, read_data, require_at_least
from .printing import print_keep_float, print_quantize_errors, print_written
from .streams import terminal_progress

if TYPE_CHECKING:
    from ..core.model import LoadedModel
    from ..core.recipe import Recipe
    from ..core.speedup import KeepFloatOutcome

CALIBRATION_SAMPLES_FOR_ERRORS = 64
RECIPE_OPTIONS = {"method": "method", "percentile": "percentile", "ema_momentum": "ema_momentum",
                  "granularity": "granularity", "activations": "activation_type",
                  "symmetric_activations": "symmetric_activations", "samples": "samples",
                  "histogram_values": "histogram_values", "exclude": "exclude"}
"""quantize's options that set a recipe field (option dest -> Recipe field). They default to None, not
to the recipe's value: only an option given on the command line overrides a --recipe."""


def run_quantize(args: argparse.Namespace) -> None:
    from ..core.evaluate import analyse_errors
    from ..core.fileio import check_outputs
    from ..core.session import first_whole_batches
    from ..core.model import load_model
    from ..core.quantize import quantize_model
    from ..core.recipe import Recipe
    from ..core.report import quantize_report, write_report

    recipe = recipe_from_args(args, Recipe.load(args.recipe) if args.recipe else Recipe())
    _check_quantize_options_apply(args, recipe)
    _note_unused_recipe_settings(args, recipe)
    require_at_least("--threads", args.threads, 0)
    check_image_options_apply(args, args.calib, args.data)
    _note_unused_recorded_preprocessing(args)
    model = load_model(args.model)
    check_outputs(_quantize_outputs(args), _quantize_inputs(args, model))
    calibration = read_data(args, args.calib, model)
    progress = terminal_progress()
    outcome = None
    if args.keep_slow_float:
        outcome = _keep_slow_float(args, model, calibration, recipe, progress)
        result, recipe = outcome.chosen.result, outcome.chosen.result.recipe
    else:
        result = quantize_model(model, calibration, recipe, args.output, progress=progress)
    print_written(result)
    error_data = first_whole_batches(model, calibration, min(CALIBRATION_SAMPLES_FOR_ERRORS, result.calibration_samples))
    # against the model as the user gave it, layers named as in `evaluate` (a folded Conv by its BatchNorm)
    errors = analyse_errors(model, result.int8, error_data, progress=progress)
    print_quantize_errors(errors)
    if outcome is not None:
        print_keep_float(outcome)
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
    inputs = {**model.source_files(), "the calibration data": args.calib}
    if args.data is not None:
        inputs["the --data samples"] = args.data
    if args.recipe is not None:
        inputs["the recipe"] = args.recipe
    if args.preprocess is not None:
        inputs["the preprocessing settings"] = args.preprocess
    return inputs


def _keep_slow_float(
    args: argparse.Namespace, model: object, calibration: object, recipe: Recipe, progress: Progress
) -> KeepFloatOutcome:
    from ..core.session import smallest_run
    from ..core.speedup import keep_slow_float

    if args.data is None:
        raise Q8Error("--keep-slow-float needs --data DATA: the samples to time both models on.")
    data = read_data(args, args.data, model, samples=smallest_run(model))  # type: ignore[arg-type]
    return keep_slow_float(
        model, calibration, recipe, args.output, data, threads=args.threads or 0, progress=progress  # type: ignore[arg-type]
    )


def _check_quantize_options_apply(args: argparse.Namespace, recipe: Recipe) -> None:
    """An option that would be dropped without a word is refused: the user believes it acted."""
    if not args.keep_slow_float:
        unused = [flag for flag, value in (("--data", args.data), ("--threads", args.threads)) if value is not None]
        if unused:
            verb = "applies" if len(unused) == 1 else "apply"
            raise Q8Error(f"{' and '.join(unused)} only {verb} with --keep-slow-float (the samples and threads "
                          "it times the models with).")
    unread = option_no_method_reads(args, (recipe.method,))
    if unread is not None:
        flag, readers = unread
        raise Q8Error(f"{flag} applies only to --method {either(readers)}; the method is {recipe.method}.")


def option_no_method_reads(args: argparse.Namespace, methods: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """The first method setting given on the command line that none of ``methods`` reads, as (flag, the
    methods that read it), or None: such an option would be dropped without a word."""
    from ..core.recipe import METHOD_SETTINGS

    for setting, readers in METHOD_SETTINGS.items():  # each of these options is named after its setting
        if getattr(args, setting) is not None and not set(readers) & set(methods):
            return "--" + setting.replace("_", "-"), readers
    return None


def _note_unused_recipe_settings(args: argparse.Namespace, recipe: Recipe) -> None:
    """A --recipe's changed setting that its method does not read is noted, not refused, unlike the option
    (refused above, so whatever is left came from the file): a recipe holds every setting, and one saved from
    the window, or re-run with another --method, rightly keeps values its method ignores."""
    unused = recipe.unused_settings()
    if unused:
        settings = " and ".join(f"{name} {value}" for name, value in unused.items())
        print(f"q8studio: note: {args.recipe.name} sets {settings}, which the method {recipe.method} does not use.",
              file=sys.stderr)


def _note_unused_recorded_preprocessing(args: argparse.Namespace) -> None:
    """A report of an image-folder run given as --recipe brings its image preprocessing, which data of arrays
    do not use. Noted, where --preprocess with arrays is refused (check_image_options_apply): the report is a
    recipe, kept to be run on any data, as a recipe's setting its method ignores is noted above."""
    from ..core.imagefolder import recorded_preprocessing

    paths = [path for path in (args.calib, args.data) if path is not None]
    if args.recipe is None or not all(path.is_file() for path in paths):  # a missing path is load_data's to report
        return
    if recorded_preprocessing(args.recipe) is not None:
        print(f"q8studio: note: {args.recipe.name} sets image preprocessing, which {paths[0].name}, a file of arrays, "
              "does not use.", file=sys.stderr)


def either(words: tuple[str, ...]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return " or ".join((", ".join(words[:-1]), words[-1])) if len(words) > 1 else words[0]


def recipe_from_args(args: argparse.Namespace, base: Recipe) -> Recipe:
    """``base`` with the recipe options given on the command line over it (Recipe makes --exclude a tuple)."""
    changes = {field: getattr(args, dest) for dest, field in RECIPE_OPTIONS.items()}
    return base.with_changes(**{k: v for k, v in changes.items() if v is not None})
