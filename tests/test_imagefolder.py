"""Image folders as model input: settings start from the model's input, 16-bit PNGs, mean/std counts."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from PIL import Image

from builders import image_copies, save
from q8studio.__main__ import main
from q8studio.cli import build_parser
from q8studio.cli.inputs import image_options
from q8studio.core.data import Dataset, load_data
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Cancelled, Q8Error
from q8studio.core.imagefolder import (
    IMAGE_SUFFIXES, REPORT_EVERY, ImageFolderSource, ImageOptions, ImagePreprocessing, first_image, image_files)
from q8studio.core.model import load_model
from q8studio.core.progress import CancelToken, Progress


def _nhwc_model(path: Path) -> Path:
    """A classifier head on an [N,8,8,3] (channels-last) input, as TensorFlow exports them."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("GlobalAveragePool", ["nchw"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return save(model, path)


def _write_images(folder: Path, arrays: list[np.ndarray]) -> Path:
    folder.mkdir()
    for i, pixels in enumerate(arrays):
        Image.fromarray(pixels).save(folder / f"img_{i}.png")
    return folder


def _cli_data(model: Path, data: Path, *options: str) -> Dataset:
    """The data a command would load, with image options given as on the command line."""
    args = build_parser().parse_args(["quantize", str(model), "--calib", str(data), "-o", "out.onnx", *options])
    return load_data(data, load_model(model), preprocessing=image_options(args))


def _rows(data: Dataset) -> np.ndarray:
    return np.concatenate([next(iter(b.values())) for b in data.batches(4)])


@pytest.mark.parametrize(
    "options, scale, mean, std",
    [
        (["--mean", "0.305", "--std", "0.319"], 1 / 255, 0.305, 0.319),
        (["--scale", "0.00392"], 0.00392, 0.0, 1.0),
        (["--preprocess", "partial.json"], 1 / 255, 0.5, 0.25),
    ],
    ids=["mean-std", "scale", "partial-json"],
)
def test_partial_options_keep_the_size_and_colour_the_model_implies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], scale: float, mean: float, std: float
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("partial.json").write_text(json.dumps({"mean": [0.5], "std": [0.25]}))
    assets = demo_assets()  # digits_cnn: a [N,1,16,16] grey input
    data = _cli_data(assets.model, assets.images, *options)
    rows = _rows(data)
    assert rows.shape == (10, 1, 16, 16)
    files = data.sources["image"].files  # type: ignore[attr-defined]
    pixels = np.stack([np.asarray(Image.open(f).convert("L"), np.float32) for f in files])[:, None]
    np.testing.assert_allclose(rows, (pixels * np.float32(scale) - mean) / std, rtol=1e-5, atol=1e-5)


def test_only_mean_and_std_keep_a_channels_last_model_channels_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    folder = _write_images(tmp_path / "images", images)
    data = _cli_data(_nhwc_model(tmp_path / "nhwc.onnx"), folder, "--mean", "0.4", "0.5", "0.6", "--std", "0.2")
    expected = (np.stack(images).astype(np.float32) / 255 - np.array([0.4, 0.5, 0.6], np.float32)) / 0.2
    np.testing.assert_allclose(_rows(data), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", ["demo-gray", "cnn-rgb"])
def test_16_bit_png_preprocesses_like_its_8_bit_version(tmp_path: Path, cnn_path: Path, model: str) -> None:
    rng = np.random.default_rng(0)
    eight = [rng.integers(0, 256, (20, 24), dtype=np.uint8) for _ in range(3)]
    sixteen = [(a.astype(np.uint16) * 257) for a in eight]  # 255 -> 65535, the same brightness
    folder8 = _write_images(tmp_path / "eight", eight)
    folder16 = _write_images(tmp_path / "sixteen", sixteen)
    assert Image.open(next(folder16.iterdir())).mode.startswith("I")
    path = demo_assets().model if model == "demo-gray" else cnn_path
    rows8 = _rows(load_data(folder8, load_model(path)))
    rows16 = _rows(load_data(folder16, load_model(path)))
    assert rows16.shape == rows8.shape == ((3, 1, 16, 16) if model == "demo-gray" else (3, 3, 16, 16))
    # Pillow's 8-bit resize rounds to whole levels after each of its two passes, the 16-bit path not.
    np.testing.assert_allclose(rows16, rows8, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize(
    "model, options, message",
    [
        ("cnn", ["--image-size", "16", "16", "--color", "rgb", "--mean", "0.4", "0.5"],
         "Image mean has 2 values but the images have 3 colour channels (rgb); give 1 or 3."),
        ("demo", ["--image-size", "16", "16", "--color", "gray", "--mean", "0.4", "0.5", "0.6"],
         "Image mean has 3 values but the images have 1 colour channel (gray); give 1."),
        ("demo", ["--std", "0.2", "0.2", "0.2"],
         "Image std has 3 values but the images have 1 colour channel (gray); give 1."),
        ("demo", ["--scale", "inf"], "Image scale, mean and std must be finite numbers."),
        ("demo", ["--mean", "nan"], "Image scale, mean and std must be finite numbers."),
        ("demo", ["--mean", "1e40"], "Image mean 1e+40 is beyond the float32 range of pixels (±3.4e+38)."),
    ],
    ids=["two-means-rgb", "three-means-gray", "three-stds-gray-from-model", "infinite-scale", "nan-mean",
         "float32-overflowing-mean"],
)
def test_preprocessing_that_fits_no_image_is_a_one_line_error(
    tmp_path: Path, cnn_path: Path, capsys: pytest.CaptureFixture[str], model: str, options: list[str], message: str
) -> None:
    folder = _write_images(tmp_path / "images", [np.zeros((16, 16, 3), np.uint8)] * 2)
    path = demo_assets().model if model == "demo" else cnn_path
    out = tmp_path / "o.onnx"
    assert main(["quantize", str(path), "--calib", str(folder), "-o", str(out), *options]) == 2
    assert capsys.readouterr().err == f"q8studio: error: {message}\n"
    assert not out.exists()


def test_settings_reject_mean_count_of_neither_one_nor_the_channels() -> None:
    with pytest.raises(Q8Error, match="Image mean has 2 values but the images have 3 colour channels"):
        ImagePreprocessing(color="bgr", mean=(0.1, 0.2))
    assert ImagePreprocessing(color="bgr", mean=(0.1, 0.2, 0.3), std=(0.5,)).channels == 3


@pytest.mark.parametrize("settings, message", [
    ({"mean": (0.5, 1e40, 0.5)}, "Image mean 1e+40 is beyond the float32 range of pixels (±3.4e+38)."),
    ({"std": (-1e39,)}, "Image std -1e+39 is beyond the float32 range of pixels (±3.4e+38)."),
    ({"scale": 1e39}, "Image scale 1e+39 is beyond the float32 range of pixels (±3.4e+38)."),
    ({"scale": 1e38}, "Image scale, mean and std take pixels (0 to 255) to 2.55e+40, beyond the float32 range"),
    ({"scale": 1e36, "mean": (-3e38,)}, "take pixels (0 to 255) to 5.55e+38"),  # each fits; the sum does not
    ({"std": (1e-40,)}, "take pixels (0 to 255) to 1e+40"),  # 1/255 over 1e-40
    ({"std": (1e-46,)}, "Image std values must be non-zero."),  # 0 in float32
], ids=["mean", "std", "scale", "scaled-pixels", "centred-pixels", "tiny-std", "std-zero-in-float32"])
def test_settings_that_overflow_float32_pixels_are_refused_in_one_line(settings: dict, message: str) -> None:
    """Pixels are computed in float32: such settings made ±inf inputs and numpy's overflow warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Q8Error, match=re.escape(message)):
            ImagePreprocessing(color="rgb", **settings)


def test_extreme_settings_within_float32_give_finite_pixels() -> None:
    pre = ImagePreprocessing(size=(2, 2), color="gray", scale=1e36, mean=(1e38,), std=(0.5,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = pre.apply(Image.fromarray(np.full((2, 2), 255, np.uint8)))
    assert np.isfinite(pixels).all() and pixels.max() > 3e38


def test_a_misspelt_settings_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    """With partial files meaningful, a typo would otherwise quietly leave the model's value in place."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"mean": [0.5], "means": [0.1]}))
    with pytest.raises(Q8Error, match="unknown keys means"):
        ImagePreprocessing.from_json(path)


@pytest.mark.parametrize("scale", ["0", "-0.0", "1e-46"], ids=["zero", "minus-zero", "zero-in-float32"])
def test_a_zero_scale_is_refused_from_the_flag_the_settings_file_and_the_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scale: str
) -> None:
    """Every image times 0 is one constant: the int8 model was calibrated on it, scored 10%, and the run exited 0."""
    assets = demo_assets()
    settings = tmp_path / "scale.json"
    settings.write_text(f'{{"scale": {scale}}}')
    message = (f"Image scale {float(scale):g} turns every image into the same constant; give a non-zero multiplier, "
               "the one the model was trained with (such as 0.00392 for 1/255).")
    out = tmp_path / "o.onnx"
    for given in (["--scale", scale, "--mean", "0.3", "--std", "0.3"], ["--preprocess", str(settings)]):
        assert main(["quantize", str(assets.model), "--calib", str(assets.images), "-o", str(out), *given]) == 2
        assert capsys.readouterr().err == f"q8studio: error: {message}\n"
        assert not out.exists()
    with pytest.raises(Q8Error) as refused:  # the GUI's form builds its settings so
        ImagePreprocessing(scale=float(scale))
    assert str(refused.value) == message


@pytest.mark.parametrize("settings, message", [
    ({"mean": "0.5"}, "mean must be a number or a list of numbers (got '0.5')"),
    ({"std": [0.3, "0.3", 0.3]}, "std must be a number or a list of numbers (got '0.3')"),
    ({"mean": [[0.5]]}, "mean must be a number or a list of numbers (got [0.5])"),
    ({"std": True}, "std must be a number or a list of numbers (got true)"),
    ({"scale": "0.00392"}, "scale must be a number (got '0.00392')"),
    ({"scale": None}, "scale must be a number (got null)"),
    ({"size": [16.5, 16]}, "size must be two whole numbers, height and width (got 16.5)"),
    ({"size": [16, False]}, "size must be two whole numbers, height and width (got false)"),
    ({"size": "16"}, "size must be two whole numbers, height and width (got '16')"),
    ({"size": 16}, "size must be two whole numbers, height and width (got 16)"),
    ({"layout": None}, "layout must be one of NCHW, NHWC (got null)"),
    ({"color": ["rgb"]}, "color must be one of rgb, bgr, gray (got [\"rgb\"])"),
], ids=["string-mean", "string-in-std", "nested-mean", "bool-std", "string-scale", "null-scale", "fractional-size",
        "bool-in-size", "string-size", "one-number-size", "null-layout", "list-color"])
def test_a_settings_value_of_the_wrong_type_is_refused_naming_its_key(
    tmp_path: Path, settings: dict, message: str
) -> None:
    """float() read "0.5" character by character ("could not convert string to float: '.'") and int() cut 16.5
    to 16 without a word."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(Q8Error) as refused:
        ImageOptions.from_json(path)
    assert str(refused.value) == f"Cannot read preprocessing settings from {path}: {message}."


def test_settings_numbers_are_read_as_json_writes_them(tmp_path: Path) -> None:
    """One mean for all channels needs no list, 16.0 is a whole size, and an integer too long for a float is as
    infinite as 1e999 (and refused as such, not with Python's OverflowError)."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"size": [16.0, 12], "scale": 1, "mean": 0.5, "std": [0.25]}))
    options = ImageOptions.from_json(path)
    assert options == ImageOptions(size=(16, 12), scale=1.0, mean=(0.5,), std=(0.25,))
    assert all(type(v) is int for v in options.size or ())
    path.write_text(json.dumps({"mean": 10**400}))
    with pytest.raises(Q8Error, match=re.escape("Image scale, mean and std must be finite numbers.")):
        ImagePreprocessing.from_json(path)


@pytest.mark.parametrize("options, noted", [
    ([], True),
    (["--preprocess", "{demo}/preprocess.json"], False),
    (["--mean", "0.305", "--std", "0.319"], False),
    (["--image-size", "16", "16"], True),  # the size was given, the normalisation was not
], ids=["nothing", "preprocess", "mean-std", "size-only"])
def test_images_read_with_a_normalisation_nobody_gave_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], noted: bool
) -> None:
    """The model's input tells size and channels, not the normalisation: the demo's images then score 10%."""
    assets = demo_assets()
    demo = str(assets.model.parent)
    argv = ["quantize", str(assets.model), "--calib", str(assets.images), "-o", str(tmp_path / "m.onnx"),
            *(option.format(demo=demo) for option in options)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    note = "q8studio: note: images read as 16x16 gray NCHW, x/255, mean 0, std 1: the normalisation is a default"
    assert (note in err) == noted


def _tree(root: Path) -> Path:
    """A folder whose string order differs from its path order ('a-b/...' sorts after 'a/...' by path, before
    it as a string), with what is no image to read: a link to a folder, a dangling link, a name that is only a
    suffix, a FIFO; and an upper-case suffix that is one."""
    pixels = np.zeros((4, 4), np.uint8)
    for name in ["a/b.png", "a/b/c.png", "a-b/x.png", "a.b/y.jpg", "A/z.JPEG", "top.bmp", "a/b/.png", "deep/1/2/3.png"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name, format="PNG")  # the content does not matter here, the names do
    (root / "linked").symlink_to(root / "a", target_is_directory=True)
    (root / "dangling.png").symlink_to(root / "nowhere.png")
    os.mkfifo(root / "pipe.png")
    return root


def test_image_files_are_listed_in_path_order_and_skip_what_is_no_image_file(tmp_path: Path) -> None:
    """The listing a run reads, in the order of the whole paths, as pathlib's rglob gave it before."""
    root = _tree(tmp_path / "images")
    expected = sorted(p for p in root.resolve().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    listed = list(image_files(root))
    assert listed == expected
    assert [p.relative_to(root).as_posix() for p in listed] == [
        "A/z.JPEG", "a/b/c.png", "a/b.png", "a-b/x.png", "a.b/y.jpg", "deep/1/2/3.png", "top.bmp"]


def test_a_folder_given_by_another_path_is_the_same_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statistics of a run are reused only for the same files: the fingerprint names them by resolved path."""
    assets = demo_assets()
    model = load_model(assets.model)
    (tmp_path / "via").symlink_to(assets.images, target_is_directory=True)
    monkeypatch.chdir(assets.images.parent)
    given = [assets.images, Path(assets.images.name), tmp_path / "via"]
    fingerprints = {load_data(path, model).fingerprint for path in given}
    assert len(fingerprints) == 1


def test_the_preview_shows_the_first_sample_a_run_reads(tmp_path: Path) -> None:
    root = _tree(tmp_path / "images")
    prep = ImagePreprocessing(size=(4, 4), color="gray")
    np.testing.assert_array_equal(first_image(root, prep), ImageFolderSource(root, prep).load(0))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(Q8Error, match="contains no images"):
        first_image(tmp_path / "empty", prep)



def test_reading_a_large_folder_reports_its_steps_and_can_be_cancelled(tmp_path: Path) -> None:
    """Listing and dating half a million files takes seconds: the window shows how far it got and offers Cancel."""
    folder = image_copies(tmp_path / "many", 2 * REPORT_EVERY + 5)
    model = load_model(demo_assets().model)
    reports: list[tuple[str, int, int]] = []
    options = ImageOptions.from_json(demo_assets().preprocessing)
    data = load_data(folder, model, preprocessing=options, progress=Progress(lambda *r: reports.append(r), None, 0.0))
    assert ("Listing images", REPORT_EVERY, 0) in reports and ("Listing images", 2 * REPORT_EVERY, 0) in reports
    dates = [done for stage, done, total in reports if stage == "Reading file dates" and total == data.count]
    assert dates == [0, REPORT_EVERY, 2 * REPORT_EVERY] and data.count == 2 * REPORT_EVERY + 5
    reports.clear()
    data.check_values(progress=Progress(lambda *r: reports.append(r), None, 0.0))
    assert [r for r in reports if r[0] == "Checking images"] == [
        ("Checking images", done, data.count) for done in (0, REPORT_EVERY, 2 * REPORT_EVERY)]

    token = CancelToken()
    stop_at_first_report = Progress(lambda *r: token.cancel(), token, 0.0)
    with pytest.raises(Cancelled):
        load_data(folder, model, preprocessing=options, progress=stop_at_first_report)
