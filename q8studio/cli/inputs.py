"""What a command is given, read and checked: data with its image preprocessing, the model pair,
counts, and options that would have no effect."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import Q8Error
from .streams import terminal_progress

if TYPE_CHECKING:
    from ..core.data import Dataset
    from ..core.imagefolder import ImageOptions
    from ..core.model import LoadedModel

IMAGE_OPTIONS = {"preprocess": "--preprocess", "image_size": "--image-size", "layout": "--layout",
                 "color": "--color", "scale": "--scale", "mean": "--mean", "std": "--std"}


def require_at_least(flag: str, value: int | None, lowest: int) -> None:
    if value is not None and value < lowest:
        raise Q8Error(f"{flag} must be at least {lowest} (got {value}).")


def check_image_options_apply(args: argparse.Namespace, *data: Path | None) -> None:
    """Image options act on image folders only; with arrays they would be dropped without a word."""
    given = [flag for dest, flag in IMAGE_OPTIONS.items() if getattr(args, dest) is not None]
    paths = [path for path in data if path is not None]
    if given and paths and all(path.is_file() for path in paths):  # a missing path is load_data's to report
        verb = "applies" if len(given) == 1 else "apply"
        raise Q8Error(f"{', '.join(given)} only {verb} to a folder of images, and {paths[0].name} is a file of "
                      "arrays; leave them out.")


def image_options(args: argparse.Namespace) -> ImageOptions:
    """The --preprocess file's keys with the flags given over them; load_data takes the rest from the model.

    Without --preprocess, a report given as --recipe supplies the preprocessing its run recorded: the
    recipe of an image-folder run is incomplete without it.
    """
    from ..core.imagefolder import ImageOptions, recorded_preprocessing

    recipe = getattr(args, "recipe", None)  # only quantize takes one
    if args.preprocess:
        base = ImageOptions.from_json(args.preprocess)
    else:
        base = (recorded_preprocessing(recipe) if recipe is not None else None) or ImageOptions()
    changes = {
        "size": tuple(args.image_size) if args.image_size else None,
        "layout": args.layout,
        "color": args.color,
        "scale": args.scale,
        "mean": tuple(args.mean) if args.mean else None,
        "std": tuple(args.std) if args.std else None,
    }
    return replace(base, **{k: v for k, v in changes.items() if v is not None})


def read_data(args: argparse.Namespace, path: Path, model: LoadedModel, samples: int | None = None) -> Dataset:
    """The data of ``path`` for ``model``; an image folder read with a normalisation nobody gave is noted:
    the model's input tells its size and channels, never the scale, mean and std it was trained with, and
    the wrong ones cost accuracy without an error (the demo's images score 10% instead of 100%)."""
    from ..core.data import load_data

    options = image_options(args)
    listing = terminal_progress()  # a large folder takes seconds
    data = load_data(path, model, samples=samples, preprocessing=options, progress=listing)
    used = data.image_preprocessing
    if used is not None and options.scale is None and options.mean is None and options.std is None:
        print(f"q8studio: note: {path.name} read as {used.describe()}: the normalisation is a default, not the "
              "model's; give the one it was trained with (--preprocess, or --scale/--mean/--std).", file=sys.stderr)
    return data


def float_and_int8(args: argparse.Namespace) -> tuple[LoadedModel, LoadedModel]:
    """The two models of evaluate and profile, refused when swapped or the same."""
    from ..core.model import load_model
    from ..core.refusals import check_float_and_int8

    float_model, int8_model = load_model(args.float_model), load_model(args.int8_model)
    if note := check_float_and_int8(float_model, int8_model):
        print(f"q8studio: note: {note}", file=sys.stderr)
    return float_model, int8_model
