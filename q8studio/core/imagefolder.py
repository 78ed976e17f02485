"""A folder of PNG/JPEG images as model input, with the usual classifier preprocessing.

Images are decoded batch by batch. Sub-folders named by integer class id (``3/img.png``)
provide labels, as in the common ImageNet-style layout.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import Q8Error
from .fileio import read_json
from .model import TensorInfo
from .progress import NO_PROGRESS, Progress

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LAYOUTS = ("NCHW", "NHWC")
COLORS = ("rgb", "bgr", "gray")
PIXEL_RANGE = (0.0, 255.0)  # what ``_pixels`` gives 8- and 16-bit images alike
FLOAT32_MAX = float(np.finfo(np.float32).max)
END_MARKERS = {"PNG": b"IEND", "JPEG": b"\xff\xd9"}  # PNG's last chunk, JPEG's end-of-image marker
TAIL_BYTES = 4096
"""How much of a file's end is searched for its format's end marker: a writer may append a little after it."""
CHECK_FILES = 4096
"""How many files :meth:`ImageFolderSource.check_files` reads when data are chosen (~0.15 s on a 2-core
machine; all 50,000 of an ImageNet validation folder took 1.9 s). A run checks the rest as it reads them."""
REPORT_EVERY = 1024
"""Files listed, dated or checked between two progress reports (each report also checks for Cancel): half a
million files take seconds, and a report per file would cost as much again."""


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image file becomes one model input row: resize, colour order, scale, normalise, layout."""

    size: tuple[int, int] = (224, 224)  # (height, width)
    layout: str = "NCHW"
    color: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise Q8Error(f"Image layout must be one of {', '.join(LAYOUTS)} (got '{self.layout}').")
        if self.color not in COLORS:
            raise Q8Error(f"Image colour must be one of {', '.join(COLORS)} (got '{self.color}').")
        if len(self.size) != 2 or min(self.size) < 1:
            raise Q8Error(f"Image size must be two positive numbers, height and width (got {self.size}).")
        if not all(math.isfinite(v) for v in (self.scale, *self.mean, *self.std)):
            raise Q8Error("Image scale, mean and std must be finite numbers.")
        for name, values in (("scale", (self.scale,)), ("mean", self.mean), ("std", self.std)):
            big = next((v for v in values if abs(v) > FLOAT32_MAX), None)
            if big is not None:
                raise Q8Error(f"Image {name} {big:g} is beyond the float32 range of pixels (±{FLOAT32_MAX:.3g}).")
        if any(np.float32(s) == 0 for s in self.std):
            raise Q8Error("Image std values must be non-zero.")
        if np.float32(self.scale) == 0:  # pixels times 0 (in float32) are one constant, whatever the image
            raise Q8Error(f"Image scale {self.scale:g} turns every image into the same constant; give a non-zero "
                          "multiplier, the one the model was trained with (such as 0.00392 for 1/255).")
        for name, values in (("mean", self.mean), ("std", self.std)):
            self._check_count(name, len(values))
        self._check_pixel_range()

    def _check_pixel_range(self) -> None:
        """Pixels are computed in float32: settings that take 0-255 pixels past its range would give ±inf or
        NaN inputs (and numpy's overflow warning), which a run refuses only once it reads the images."""
        scaled = np.array(PIXEL_RANGE)[:, None] * np.float32(self.scale)  # float64 of the float32 settings
        centred = scaled - np.asarray(self.mean, np.float32)
        peak = max(float(np.abs(v).max()) for v in (scaled, centred, centred / np.asarray(self.std, np.float32)))
        if peak > FLOAT32_MAX:
            raise Q8Error(f"Image scale, mean and std take pixels (0 to 255) to {peak:.3g}, beyond the float32 "
                          f"range (±{FLOAT32_MAX:.3g}).")

    def _check_count(self, name: str, count: int) -> None:
        """One value for all channels or one per channel: anything else would broadcast wrongly or not at all."""
        if count in (1, self.channels):
            return
        channels = f"{self.channels} colour channel{'s' if self.channels > 1 else ''} ({self.color})"
        choices = "1" if self.channels == 1 else f"1 or {self.channels}"
        raise Q8Error(f"Image {name} has {count} values but the images have {channels}; give {choices}.")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @classmethod
    def for_input(cls, spec: TensorInfo) -> "ImagePreprocessing":
        """A guess from the input's shape: channel axis position and spatial size."""
        shape = spec.shape or ()
        if len(shape) == 4 and shape[1] in (1, 3):
            return cls(size=(_dim(shape[2]), _dim(shape[3])), layout="NCHW", color="gray" if shape[1] == 1 else "rgb")
        if len(shape) == 4 and shape[3] in (1, 3):
            return cls(size=(_dim(shape[1]), _dim(shape[2])), layout="NHWC", color="gray" if shape[3] == 1 else "rgb")
        raise Q8Error(f"Input '{spec.name}' {spec.shape_text()} does not look like an image batch.")

    @classmethod
    def from_json(cls, path: Path) -> "ImagePreprocessing":
        """A settings file on its own: keys it leaves out take the fixed defaults."""
        return ImageOptions.from_json(path).over(cls())

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """One line a user can check against how the model was trained: "16x16 gray NCHW, x/255, mean 0, std 1"."""
        def values(numbers: tuple[float, ...]) -> str:
            return ", ".join(f"{v:g}" for v in numbers)

        scale = "x/255" if self.scale == 1.0 / 255.0 else f"x*{self.scale:g}"
        return (f"{self.size[0]}x{self.size[1]} {self.color} {self.layout}, {scale}, mean {values(self.mean)}, "
                f"std {values(self.std)}")

    def apply(self, image: Image.Image) -> np.ndarray:
        """One image -> float32 array in the model's layout (without the batch axis)."""
        height, width = self.size
        pixels = _pixels(image, self.channels, (width, height))
        if self.color == "bgr":
            pixels = pixels[:, :, ::-1]
        pixels = pixels * np.float32(self.scale)
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1) if self.layout == "NCHW" else pixels)


def _dim(value: int | str | None) -> int:
    return value if isinstance(value, int) and value > 0 else 224


def _pixels(image: Image.Image, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Resized pixels as float32 height x width x channels on the 0-255 scale of 8-bit images.

    16-bit grey PNGs decode to integer modes ("I;16", "I") that ``convert("L")`` clips at 255;
    dividing by 257 (65535 -> 255) instead keeps scale/mean/std meaning the same for both depths.
    """
    if image.mode.startswith("I"):
        grey = Image.fromarray(np.asarray(image, dtype=np.float32) / 257.0)
        pixels = np.asarray(grey.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)[:, :, None]
        return np.repeat(pixels, channels, axis=2)
    resized = image.convert("L" if channels == 1 else "RGB").resize(size, Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


@dataclass(frozen=True)
class ImageOptions:
    """The settings a user gave (command-line flags, keys of a JSON file); ``None`` = not given.

    The model's input already implies size, layout and colour channels: changing only the mean
    must keep those, not fall back to fixed defaults that the model would then reject.
    """

    size: tuple[int, int] | None = None
    layout: str | None = None
    color: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def from_json(cls, path: Path) -> "ImageOptions":
        """The keys present in a settings file, or those a quantization report recorded for its image
        folder; an unknown key is an error, not silently ignored."""
        raw = read_json(Path(path), "preprocessing settings or a report")
        return cls.from_settings(raw, path)

    @classmethod
    def from_settings(cls, raw: object, path: Path) -> "ImageOptions":
        """:meth:`from_json` of the file's content once read (``path`` names it in an error)."""
        try:
            if not isinstance(raw, dict):
                raise ValueError("expected a JSON object")
            if "q8studio_report" in raw:
                raw = _recorded_preprocessing(raw)
                if raw is None:
                    raise ValueError("the report's run did not read an image folder")
            unknown = sorted(set(raw) - {f.name for f in fields(cls)})
            if unknown:
                raise ValueError(f"unknown keys {', '.join(unknown)}")
            return cls(
                size=_size(raw["size"]) if "size" in raw else None,
                layout=_choice("layout", raw["layout"], LAYOUTS) if "layout" in raw else None,
                color=_choice("color", raw["color"], COLORS) if "color" in raw else None,
                scale=_number("scale", raw["scale"], "a number") if "scale" in raw else None,
                mean=_numbers("mean", raw["mean"]) if "mean" in raw else None,
                std=_numbers("std", raw["std"]) if "std" in raw else None,
            )
        except ValueError as exc:
            raise Q8Error(f"Cannot read preprocessing settings from {path}: {exc}.") from None

    def given(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def over(self, base: ImagePreprocessing) -> ImagePreprocessing:
        return replace(base, **self.given())  # type: ignore[arg-type]

    def for_input(self, spec: TensorInfo) -> ImagePreprocessing:
        """What the input's shape implies, with the given settings on top.

        An input whose shape says nothing about images (unknown, symbolic channels) starts from the
        fixed defaults instead, provided the user gave settings to go on.
        """
        try:
            implied = ImagePreprocessing.for_input(spec)
        except Q8Error:
            if not self.given():
                raise
            implied = ImagePreprocessing()
        return self.over(implied)


def _shown(value: object) -> str:
    """A settings value as the user wrote it: strings quoted as the other refusals quote them, the rest as JSON."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def _number(key: str, value: object, expected: str) -> float:
    """A JSON number: ``float()`` would also take "0.5" and true, hiding a settings file written wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be {expected} (got {_shown(value)})")
    try:
        return float(value)
    except OverflowError:  # an integer of over 308 digits: refused as infinite, as 1e999 is
        return math.inf if value > 0 else -math.inf


def _numbers(key: str, value: object) -> tuple[float, ...]:
    """One number for all channels or a list of them; a string is refused, not read character by character."""
    expected = "a number or a list of numbers"
    return tuple(_number(key, v, expected) for v in (value if isinstance(value, list) else [value]))


def _size(value: object) -> tuple[int, int]:
    """Height and width in whole pixels: 16.5 would otherwise be truncated to 16 without a word."""
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"size must be two whole numbers, height and width (got {_shown(value)})")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError(f"size must be two whole numbers, height and width (got {_shown(v)})")
    return int(value[0]), int(value[1])


def _choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    """One of the named choices; null is refused here, where it would otherwise read as "not given"."""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be one of {', '.join(choices)} (got {_shown(value)})")
    return value


def recorded_preprocessing(path: Path) -> ImageOptions | None:
    """The image preprocessing ``path`` recorded if it is a quantization report of a run on an image folder;
    None for anything else (a recipe, a report of a run on arrays, a file that is no JSON)."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or "q8studio_report" not in report or _recorded_preprocessing(report) is None:
        return None
    return ImageOptions.from_settings(report, path)


def _recorded_preprocessing(report: dict[str, object]) -> dict[str, object] | None:
    """The image preprocessing a quantization report recorded, None when its data were arrays."""
    calibration = report.get("calibration")
    recorded = calibration.get("image_preprocessing") if isinstance(calibration, dict) else None
    return recorded if isinstance(recorded, dict) else None


class ImageFolderSource:
    """Image files of a folder (recursively), decoded and preprocessed on demand.

    ``files`` holds the paths as strings: a million ``Path`` objects took 0.3 GB more, and, being objects the
    garbage collector tracks, made its full passes stall the window ~90 ms while a folder was read.
    """

    def __init__(self, folder: Path, preprocessing: ImagePreprocessing, progress: Progress = NO_PROGRESS) -> None:
        folder = folder.resolve()  # as image_files names the files: their parents compare with it
        self.files = _listed(folder, progress)
        if not self.files:
            raise _no_images(folder)
        self.preprocessing = preprocessing
        h, w = preprocessing.size
        c = preprocessing.channels
        self.shape = (len(self.files), c, h, w) if preprocessing.layout == "NCHW" else (len(self.files), h, w, c)
        self.dtype = np.dtype(np.float32)
        self.labels = _labels_from_folders(folder, self.files)

    def load(self, index: int) -> np.ndarray:
        return _load_image(Path(self.files[index]), self.preprocessing)

    def check_files(self, count: int, progress: Progress = NO_PROGRESS) -> None:
        """Refuse the first ``count`` files (at most :data:`CHECK_FILES`) if one is no image, or is cut short,
        with the message a run would give.

        Decoding every image of a large folder takes minutes, so only the header and the last bytes are read: a
        copy cut short lacks its format's end (:func:`_ends_whole`). Only a file whose end cannot be confirmed
        that way is decoded, so a whole image with data appended is still accepted.
        """
        checked = [Path(file) for file in self.files[:min(count, CHECK_FILES)]]
        for index, path in enumerate(checked):
            if index % REPORT_EVERY == 0:
                progress.report("Checking images", index, len(checked))
            with _opened(path) as image:
                if not _ends_whole(path, image.format):
                    image.load()  # raises, inside _opened, what a run reading this file would raise

    def iter_rows(self, batch_size: int, limit: int) -> Iterator[np.ndarray]:
        for start in range(0, limit, batch_size):
            stop = min(start + batch_size, limit)
            yield np.stack([self.load(i) for i in range(start, stop)])


def first_image(folder: Path, preprocessing: ImagePreprocessing) -> np.ndarray:
    """The folder's first sample, without listing a large folder whole: what a preview shows."""
    first = next(image_files(folder), None)
    if first is None:
        raise _no_images(folder)
    return _load_image(first, preprocessing)


def _load_image(path: Path, preprocessing: ImagePreprocessing) -> np.ndarray:
    with _opened(path) as image:
        return preprocessing.apply(image)


def _no_images(folder: Path) -> Q8Error:
    return Q8Error(f"The folder {folder} contains no images (PNG or JPEG).")


def image_files(folder: Path) -> Iterator[Path]:
    """The image files under ``folder`` (sub-folders too, not those reached through a link), in path
    order, under the folder's resolved path, so that they name the same files however it was given.

    Each folder's entries are sorted by name and a sub-folder is walked where its name sorts: the order of
    the whole paths (:mod:`pathlib`'s), found lazily, so the first image of a large folder comes at once.
    Directory entries say which names are files without a ``stat`` each: 50,000 images in 0.3 s, where
    ``rglob`` and a sort take 0.6 s (benchmarks/image_folder.py).
    """
    for path in _image_paths(str(folder.resolve())):
        yield Path(path)


def _listed(folder: Path, progress: Progress) -> list[str]:
    """The paths :func:`image_files` gives for the resolved ``folder``, as strings, reporting how many were
    found so far (no total is known)."""
    files = []
    for path in _image_paths(str(folder)):
        files.append(path)
        if len(files) % REPORT_EVERY == 0:
            progress.report("Listing images", len(files), 0)
    return files


def _image_paths(directory: str) -> Iterator[str]:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: os.path.normcase(entry.name))
    except PermissionError:  # a folder the user cannot list holds no images for them
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _image_paths(entry.path)
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
            yield entry.path


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``path`` opened by Pillow (header read, pixels decoded on use); any failure names the file, one message
    whether a file is checked when chosen or read by a run."""
    try:
        with Image.open(path) as image:
            yield image
    except (UnidentifiedImageError, OSError) as exc:
        raise Q8Error(f"Cannot read image {path.name}: {exc}") from None


def _ends_whole(path: Path, image_format: str | None) -> bool:
    """Whether the file visibly ends where its format says: PNG's IEND chunk or JPEG's end-of-image marker
    in its last :data:`TAIL_BYTES`, a BMP at least as long as its header declares. False when unsure."""
    size = path.stat().st_size
    with path.open("rb") as file:
        if image_format == "BMP":
            file.seek(2)
            declared = int.from_bytes(file.read(4), "little")  # bfSize: the whole file's length
            return 0 < declared <= size
        file.seek(max(0, size - TAIL_BYTES))
        tail = file.read()
    marker = END_MARKERS.get(image_format or "")
    return marker is not None and marker in tail


def _labels_from_folders(folder: Path, files: list[str]) -> np.ndarray | None:
    """Class ids from parent folder names, when every image sits in a folder named by an integer."""
    parents = [os.path.dirname(f) for f in files]
    names = [os.path.basename(p) for p in parents]
    if str(folder) in parents or not all(n.isdecimal() for n in names):
        return None
    return np.array([int(n) for n in names], dtype=np.int64)
