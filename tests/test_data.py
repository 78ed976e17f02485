"""Data sources checked against the model: the happy paths and each rejected input's reason."""

from __future__ import annotations

import gc
import io
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from PIL import Image

from builders import save, write_npz
from q8studio.core.data import load_data
from q8studio.core.evaluate import require_labels_fit
from q8studio.core.demo import demo_assets
from q8studio.core.errors import Q8Error
from q8studio.core import imagefolder
from q8studio.core.imagefolder import TAIL_BYTES, ImagePreprocessing
from q8studio.core.model import LoadedModel, load_model


def test_npz_streams_in_batches_equal_to_the_array(cnn_path: Path, tmp_path: Path) -> None:
    images = np.random.default_rng(0).standard_normal((10, 3, 16, 16)).astype(np.float32)
    data = load_data(write_npz(tmp_path / "d.npz", x=images, labels=np.arange(10)), load_model(cnn_path))
    batches = list(data.batches(4))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in batches]), images)
    np.testing.assert_array_equal(data.labels, np.arange(10))


def test_compressed_npz_and_sample_limit(cnn_path: Path, tmp_path: Path) -> None:
    images = np.random.default_rng(0).standard_normal((10, 3, 16, 16)).astype(np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=images)
    data = load_data(tmp_path / "c.npz", load_model(cnn_path), samples=3)
    assert data.count == 3 and data.labels is None
    np.testing.assert_array_equal(next(data.batches(8))["x"], images[:3])


def test_npy_for_single_input_and_float64_is_cast(cnn_path: Path, tmp_path: Path) -> None:
    images = np.random.default_rng(0).standard_normal((5, 3, 16, 16))
    np.save(tmp_path / "x.npy", images)
    batch = load_data(tmp_path / "x.npy", load_model(cnn_path)).first_sample()["x"]
    assert batch.dtype == np.float32 and batch.shape == (1, 3, 16, 16)


def test_demo_image_folder_matches_test_set() -> None:
    """The bundled PNGs, preprocessed as preprocess.json says, are exactly rows of test.npz."""
    assets = demo_assets()
    model = load_model(assets.model)
    prep = ImagePreprocessing.from_json(assets.preprocessing)
    images = load_data(assets.images, model, preprocessing=prep)
    assert images.count == 10
    np.testing.assert_array_equal(images.labels, np.arange(10))  # class sub-folders give labels
    with np.load(assets.test) as test:
        rows = [int(Path(p).stem.split("_")[-1]) for p in images.sources["image"].files]
        expected = test["image"][rows]
    loaded = np.concatenate([b["image"] for b in images.batches(4)])
    np.testing.assert_allclose(loaded, expected, atol=1e-6)


def test_image_preprocessing_layouts_and_colours(tmp_path: Path) -> None:
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[..., 0] = 255  # pure red
    image = Image.fromarray(pixels)
    nchw = ImagePreprocessing(size=(2, 3), layout="NCHW", color="rgb", scale=1 / 255).apply(image)
    nhwc_bgr = ImagePreprocessing(size=(2, 3), layout="NHWC", color="bgr", scale=1 / 255).apply(image)
    assert nchw.shape == (3, 2, 3) and np.allclose(nchw[0], 1.0) and np.allclose(nchw[1:], 0.0)
    assert nhwc_bgr.shape == (2, 3, 3) and np.allclose(nhwc_bgr[..., 2], 1.0) and np.allclose(nhwc_bgr[..., 0], 0.0)
    normalised = ImagePreprocessing(size=(2, 3), color="gray", scale=1.0, mean=(10.0,), std=(2.0,)).apply(
        Image.fromarray(np.full((4, 6), 30, np.uint8))
    )
    assert normalised.shape == (1, 2, 3) and np.allclose(normalised, 10.0)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"y": np.zeros((2, 3, 16, 16), np.float32)}, r"has arrays \['y'\] but the model expects inputs \['x'\]"),
        ({"x": np.zeros((2, 3, 16), np.float32)}, "rank 3"),
        ({"x": np.zeros((2, 3, 8, 16), np.float32)}, "size 8 on axis 2"),
        ({"x": np.zeros((0, 3, 16, 16), np.float32)}, "no samples"),
        ({"x": np.full((2, 3, 16, 16), "a")}, "holds <U1 values but the model expects float32"),
        ({"x": np.zeros((2, 3, 16, 16), np.complex64)}, "holds complex64 values but the model expects float32"),
        ({"x": np.zeros((2, 3, 16, 16), np.float32), "labels": np.zeros(3, np.int64)}, "3 labels for 2 samples"),
        ({"x": np.zeros((2, 3, 16, 16), np.float32), "labels": np.zeros(2)}, "integer class ids"),
    ],
    ids=["wrong-name", "wrong-rank", "wrong-dim", "empty", "strings", "complex", "label-count", "float-labels"],
)
def test_mismatched_data_is_rejected_with_the_reason(cnn_path: Path, tmp_path: Path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(Q8Error, match=message):
        load_data(path, load_model(cnn_path))


def test_an_input_named_labels_is_fed_from_its_array(tmp_path: Path) -> None:
    """``labels`` holds class ids in a .npz, unless the model has an input of that name."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["labels"], ["y"])], "labels_input",
        [helper.make_tensor_value_info("labels", onnx.TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])],
    )
    model = load_model(save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx"))
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    data = load_data(write_npz(tmp_path / "d.npz", labels=values), model)
    assert data.labels is None and data.count == 3
    np.testing.assert_array_equal(data.first_sample()["labels"], values[:1])


@pytest.mark.parametrize(
    "labels, message",
    [(np.array([3, 10]), r"'labels' range from 3 to 10, but the model's output has 10 classes \(0 to 9\)"),
     (np.array([-1, 0]), "range from -1 to 0")],
    ids=["beyond-classes", "negative"],
)
def test_labels_the_model_cannot_output_are_refused(cnn_path: Path, tmp_path: Path, labels, message) -> None:
    model = load_model(cnn_path)
    data = load_data(write_npz(tmp_path / "l.npz", x=np.zeros((2, 3, 16, 16), np.float32), labels=labels), model)
    with pytest.raises(Q8Error, match=message):
        require_labels_fit(data, model)
    if labels[0] >= 0:  # only the samples used count: the first one alone fits
        require_labels_fit(data.limited(1), model)


def test_a_class_folder_named_by_a_non_decimal_digit_gives_no_labels(tmp_path: Path) -> None:
    """'²' is a digit to Python but no integer: the folder gives no labels instead of a crash."""
    assets = demo_assets()
    for name in ("²", "1"):
        (tmp_path / name).mkdir()
        source = next((assets.images / "1").iterdir())
        (tmp_path / name / source.name).write_bytes(source.read_bytes())
    prep = ImagePreprocessing.from_json(assets.preprocessing)
    assert load_data(tmp_path, load_model(assets.model), preprocessing=prep).labels is None



def test_a_class_folder_chosen_itself_gives_no_labels_however_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images directly in the chosen folder have no class folder, even when it is called '3' and given
    by a relative path (its files are listed under its resolved path)."""
    assets = demo_assets()
    (tmp_path / "3").mkdir()
    for source in sorted((assets.images / "3").iterdir()):
        (tmp_path / "3" / source.name).write_bytes(source.read_bytes())
    monkeypatch.chdir(tmp_path)
    prep = ImagePreprocessing.from_json(assets.preprocessing)
    assert load_data(Path("3"), load_model(assets.model), preprocessing=prep).labels is None

def test_nan_values_are_rejected_naming_the_sample(cnn_path: Path, tmp_path: Path) -> None:
    images = np.zeros((6, 3, 16, 16), np.float32)
    images[4, 0, 0, 0] = np.nan
    data = load_data(write_npz(tmp_path / "nan.npz", x=images), load_model(cnn_path))
    with pytest.raises(Q8Error, match="^nan.npz: input 'x' has NaN or Inf values \\(first in sample 4\\)"):
        list(data.batches(2))


def test_values_the_models_float32_cannot_hold_are_rejected_in_one_line(cnn_path: Path, tmp_path: Path) -> None:
    """float64 data beyond float32's range would reach the model as Inf."""
    images = np.zeros((4, 3, 16, 16), np.float64)
    images[3, 1, 2, 3] = 1e300
    data = load_data(write_npz(tmp_path / "big.npz", x=images), load_model(cnn_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without numpy's overflow warning
        with pytest.raises(Q8Error, match="^big.npz: input 'x' has values too large for the model's float32 \\(first in sample 3\\)"):
            list(data.batches(2))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "none.npz", "No such data file"),
        (lambda d: _touch(d / "x.csv"), "must be a .npz file"),
        (lambda d: _touch(d / "broken.npz", b"not a zip"), "not a valid .npz"),
        (lambda d: _mkdir(d / "empty_folder"), "contains no images"),
    ],
    ids=["missing", "wrong-suffix", "not-zip", "empty-folder"],
)
def test_unusable_data_sources(cnn_path: Path, tmp_path: Path, make, message) -> None:
    with pytest.raises(Q8Error, match=message):
        load_data(make(tmp_path), load_model(cnn_path))


def _touch(path: Path, content: bytes = b"") -> Path:
    path.write_bytes(content)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_data_is_named_by_its_file_whatever_its_folder_is_called(tmp_path: Path) -> None:
    # Captions give the file's name; a folder "my data (v2)" once made them read "my data".
    folder = tmp_path / "my data (v2)"
    folder.mkdir()
    path = write_npz(folder / "calib.npz", image=np.zeros((6, 1, 16, 16), np.float32))
    data = load_data(path, load_model(demo_assets().model), samples=4)
    assert data.source.startswith(str(path)) and data.source.endswith("(4 samples)")
    assert data.name == "calib.npz" and data.limited(2).name == "calib.npz"


def _run_refusal(data) -> str:
    """What a run says when it reads ``data``: the reason a check at choose time must give too."""
    with pytest.raises(Q8Error) as refused:
        list(data.batches(1))
    return str(refused.value)


@pytest.mark.parametrize("dtype, value, problem", [
    (np.float32, np.nan, "NaN or Inf values"),
    (np.float32, -np.inf, "NaN or Inf values"),
    (np.float64, 1e300, "values too large for the model's float32"),
], ids=["nan", "inf", "float32-overflow"])
def test_check_values_refuses_what_a_run_refuses_with_its_reason(
        cnn_path: Path, tmp_path: Path, dtype, value: float, problem: str) -> None:
    images = np.zeros((40, 3, 16, 16), dtype)
    images[37, 2, 15, 15] = value
    data = load_data(write_npz(tmp_path / "bad.npz", x=images), load_model(cnn_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Q8Error) as refused:
            data.check_values()
    assert str(refused.value) == _run_refusal(data) == f"bad.npz: input 'x' has {problem} (first in sample 37)."
    data.limited(37).check_values()  # a run on the first 37 samples reads no bad value


def test_check_values_scans_a_huge_file_only_up_to_its_budget(cnn_path: Path, tmp_path: Path) -> None:
    """Choosing data must not stall on gigabytes: past the budget, the run's own check remains."""
    images = np.zeros((10, 3, 16, 16), np.float32)
    images[6, 0, 0, 0] = np.nan
    data = load_data(write_npz(tmp_path / "nan.npz", x=images), load_model(cnn_path))
    row_bytes = images[0].nbytes
    data.check_values(max_bytes=6 * row_bytes)  # samples 0-5
    with pytest.raises(Q8Error, match="first in sample 6"):
        data.check_values(max_bytes=7 * row_bytes)
    assert "first in sample 6" in _run_refusal(data)


def test_a_damaged_npz_is_refused_in_one_line_when_read(cnn_path: Path, tmp_path: Path) -> None:
    """Its header reads, its body does not (zip's CRC): a Q8Error, not the zip module's exception."""
    path = write_npz(tmp_path / "damaged.npz", x=np.ones((8, 3, 16, 16), np.float32))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    data = load_data(path, load_model(cnn_path))
    with pytest.raises(Q8Error, match="^damaged.npz: input 'x' cannot be read \\(Bad CRC-32"):
        data.check_values()
    assert "cannot be read" in _run_refusal(data)


def three_demo_images(folder: Path) -> tuple[LoadedModel, ImagePreprocessing, Path]:
    """The demo model, its image preprocessing, and ``folder`` holding three of its images, a0.png to a2.png."""
    assets = demo_assets()
    folder.mkdir()
    for i, source in enumerate(sorted(assets.images.rglob("*.png"))[:3]):
        (folder / f"a{i}.png").write_bytes(source.read_bytes())
    return load_model(assets.model), ImagePreprocessing.from_json(assets.preprocessing), folder


def test_check_values_of_an_image_folder_refuses_what_a_run_would(tmp_path: Path) -> None:
    """A file that is no image, or one cut short, is refused when chosen, in the words a run would use;
    the check reads no further than the samples a run reads."""
    model, prep, folder = three_demo_images(tmp_path / "images")
    png = (folder / "a0.png").read_bytes()
    for name, content in [("truncated.png", png[: len(png) // 2]), ("broken.png", b"not a png")]:
        (folder / name).write_bytes(content)
        data = load_data(folder, model, preprocessing=prep)
        with pytest.raises(Q8Error) as refused:
            data.check_values()
        assert str(refused.value) == _run_refusal(data)
        assert str(refused.value).startswith(f"Cannot read image {name}: ")
        data.limited(3).check_values()  # the file sorts after a*.png: a run on 3 samples never reads it
        (folder / name).unlink()


def test_choosing_a_large_folder_checks_its_first_files_and_the_run_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, prep, folder = three_demo_images(tmp_path / "images")
    (folder / "b.png").write_bytes(b"not a png")
    monkeypatch.setattr(imagefolder, "CHECK_FILES", 3)
    data = load_data(folder, model, preprocessing=prep)
    data.check_values()  # b.png is the fourth file
    assert _run_refusal(data).startswith("Cannot read image b.png")
    monkeypatch.setattr(imagefolder, "CHECK_FILES", 4)
    with pytest.raises(Q8Error, match="^Cannot read image b.png"):
        data.check_values()


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "BMP"])
def test_an_image_cut_short_is_found_without_decoding_whole_ones(image_format: str, tmp_path: Path) -> None:
    """Each format's end is checked (PNG's IEND, JPEG's end marker, BMP's declared size); a whole image with
    data appended after its end is decoded to be sure, and accepted as a run would accept it."""
    pixels = (np.random.default_rng(0).random((20, 20)) * 255).astype(np.uint8)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, image_format)
    whole = encoded.getvalue()
    suffix = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp"}[image_format]
    assets = demo_assets()
    model, prep = load_model(assets.model), ImagePreprocessing.from_json(assets.preprocessing)
    folder = tmp_path / "images"
    folder.mkdir()
    image = folder / f"x{suffix}"
    image.write_bytes(whole + bytes(3 * TAIL_BYTES))  # appended data hides the end marker from the tail read
    load_data(folder, model, preprocessing=prep).check_values()
    image.write_bytes(whole[: len(whole) - 40])
    with pytest.raises(Q8Error, match=f"^Cannot read image x{suffix}: .*[Tt]runcated"):
        load_data(folder, model, preprocessing=prep).check_values()


def sequence_first_lstm(steps: int = 6, features: int = 5, hidden: int = 8) -> onnx.ModelProto:
    """An LSTM on [steps, N, features] (ONNX's default layout: time first, the batch axis second) and a
    MatMul head on its last hidden state: ['N', 3]."""
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    weights = {"W": (1, 4 * hidden, features), "R": (1, 4 * hidden, hidden), "B": (1, 8 * hidden), "wo": (hidden, 3)}
    inits = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
             for name, shape in weights.items()] + [numpy_helper.from_array(np.array([0], np.int64), "axis0")]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "h"], name="lstm", hidden_size=hidden),
             helper.make_node("Squeeze", ["h", "axis0"], ["last"], name="squeeze"),
             helper.make_node("MatMul", ["last", "wo"], ["y"], name="head")]
    graph = helper.make_graph(nodes, "lstm", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [steps, "N", features])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_a_sequence_first_model_is_told_its_batch_axis_is_not_the_first(tmp_path: Path) -> None:
    """16 sequences of [6 steps, 5 features], one a row: the model's first axis is the 6 steps, its batch
    axis the second. Not "the batch axis is fixed at 6, use 12 samples", which quantizes on 6-row
    blocks of the data taken as time steps, each step of a block a different sequence."""
    from q8studio.core.quantize import quantize_model
    from q8studio.core.recipe import Recipe

    model = load_model(save(sequence_first_lstm(), tmp_path / "lstm.onnx"))
    rows = np.random.default_rng(1).standard_normal((16, 6, 5)).astype(np.float32)
    data = load_data(write_npz(tmp_path / "x.npz", x=rows), model)
    with pytest.raises(Q8Error) as refused:
        quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    assert str(refused.value) == (
        "The model's batch axis is not its first: input 'x' [6, N, 5] fixes axis 0 at 6 and leaves axis 1 (N) free. "
        "q8studio feeds the data's axis 0 as the model's, 6 rows a run, so the data must stack whole inputs "
        "[6, N, 5] on axis 0 (a multiple of 6 rows; got 16), not hold one sample a row.")
    stacked = rows[:12].reshape(2, 6, 6, 5).transpose(0, 2, 1, 3).reshape(12, 6, 5)  # two inputs [6 steps, 6, 5]
    quantize_model(model, load_data(write_npz(tmp_path / "s.npz", x=stacked), model), Recipe(), tmp_path / "q.onnx")
    assert (tmp_path / "q.onnx").exists()



def test_explain_refuses_a_sequence_first_model_for_what_it_is(tmp_path: Path) -> None:
    """Not "mixes the batch's 6 samples (a Transpose before it?) ... use an unfixed batch": its batch is unfixed."""
    from q8studio.core.explain import explain_node
    from q8studio.core.quantize import quantize_model
    from q8studio.core.recipe import Recipe

    model = load_model(save(sequence_first_lstm(), tmp_path / "lstm.onnx"))
    stacked = np.random.default_rng(1).standard_normal((12, 6, 5)).astype(np.float32)  # two whole inputs [6, 6, 5]
    data = load_data(write_npz(tmp_path / "s.npz", x=stacked), model)
    quantize_model(model, data, Recipe(), tmp_path / "q.onnx")
    int8 = load_model(tmp_path / "q.onnx")
    with pytest.raises(Q8Error) as refused:
        explain_node(int8, "head", load_data(tmp_path / "s.npz", int8), sample=0)
    assert str(refused.value) == (
        "Explain takes one sample as one row of the data's first axis, but input 'x' [6, N, 5] has its batch axis "
        "at axis 1 (N): a row here holds a step of several samples, not one sample.")


def test_two_threads_reading_data_at_once_both_read_it() -> None:
    """CPython before 3.11.8 shares the syntax tree builder's depth between threads, and numpy parses
    each array's header with it: profiling again in the window failed once with "SystemError: AST
    constructor recursion depth mismatch". A collection that hands the GIL over
    (here, a gc callback that sleeps) is where the builder can be interrupted; with threshold 1 every
    allocation starts one."""
    assets = demo_assets()
    model = load_model(assets.model)
    failures: list[BaseException] = []

    def read_headers() -> None:
        try:
            for _ in range(150):
                data = load_data(assets.calibration, model, samples=1)
                assert len(next(data.batches())["image"]) == 1
        except Exception as exc:  # a thread's failure is asserted on the test's own thread
            failures.append(exc)

    def hand_the_gil_over(phase: str, info: dict) -> None:
        if phase == "start":
            time.sleep(1e-6)

    threshold = gc.get_threshold()
    gc.callbacks.append(hand_the_gil_over)
    gc.set_threshold(1)
    try:
        threads = [threading.Thread(target=read_headers) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.callbacks.remove(hand_the_gil_over)
        gc.set_threshold(*threshold)
    assert not failures, repr(failures[0])
