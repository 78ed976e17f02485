"""Models with a fixed batch, models that only run one sample, and data ONNX Runtime cannot run:
every pass feeds what the model takes, and a failure on the user's data is one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from builders import save, small_cnn, transformer_block, write_npz
from q8studio.__main__ import main
from q8studio.core.calibrate import collect_statistics, tensors_to_calibrate
from q8studio.core.data import Dataset, load_data
from q8studio.core.errors import Q8Error
from q8studio.core.evaluate import analyse_errors, compare_models, measure_latency
from q8studio.core.explain import explain_node
from q8studio.core.metrics import ErrorAccumulator
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.quantize import QuantizeResult, quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import BatchRunner, cpu_session, first_run_feed, first_whole_batches, join_samples
from q8studio.core.stats import collect_tensor_stats
from q8studio.core.probe import TensorProbe

NOT_A_MULTIPLE = (
    "The model's batch axis is fixed at 4, so the sample count must be a multiple of 4 (got 10); use 8 samples."
)
ORT_FAILED = "ONNX Runtime could not run model.onnx on this data: "


def fixed_batch_cnn(size: int) -> onnx.ModelProto:
    """small_cnn with its batch axis fixed at ``size``, as many exporters write it."""
    model = small_cnn()
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = size  # replaces the symbolic "N"
    onnx.checker.check_model(model)
    return model


def single_sample_cnn() -> onnx.ModelProto:
    """small_cnn whose Flatten is an exported Reshape to [1, -1]: the batch axis is declared
    dynamic, yet only one sample runs."""
    model = small_cnn()
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "flat.shape"))
    flatten = next(node for node in model.graph.node if node.op_type == "Flatten")
    flatten.op_type = "Reshape"
    flatten.input.append("flat.shape")
    onnx.checker.check_model(model)
    return model


def images(count: int) -> np.ndarray:
    return np.random.default_rng(4).standard_normal((count, 3, 16, 16)).astype(np.float32)


def model_and_data(tmp_path: Path, proto: onnx.ModelProto, x: np.ndarray) -> tuple[LoadedModel, Dataset]:
    model = load_model(save(proto, tmp_path / "model.onnx"))
    return model, load_data(write_npz(tmp_path / "x.npz", x=x), model)


class RecordingSession:
    """A real ONNX Runtime session that records how many samples each run was given."""

    def __init__(self, model: onnx.ModelProto, outputs: list[str] | None = None) -> None:
        self.session = cpu_session(model, outputs=outputs or [])
        self.sizes: list[int] = []

    def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.sizes.append(len(next(iter(feed.values()))))
        return self.session.run(names, feed)

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)


def one_line_error(capfd: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The whole of stderr, ONNX Runtime's own logging included, after a command that must fail with exit 2."""
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert err.startswith("q8studio: error: ") and err.count("\n") == 1, err
    return err.removeprefix("q8studio: error: ").rstrip("\n")


# A fixed batch of 4


@pytest.fixture
def fixed_run(tmp_path: Path) -> tuple[LoadedModel, Dataset, QuantizeResult, np.ndarray]:
    x = images(8)
    model, data = model_and_data(tmp_path, fixed_batch_cnn(4), x)
    return model, data, quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx"), x


def test_a_fixed_batch_model_is_calibrated_in_whole_batches(fixed_run) -> None:
    model, data, _, x = fixed_run
    names = tensors_to_calibrate(model.proto)
    stats = collect_statistics(model, data, names=names)
    session = cpu_session(model.proto, outputs=names)
    runs = [session.run(names, {"x": batch}) for batch in (x[:4], x[4:])]
    for i, name in enumerate(names):
        direct = collect_tensor_stats([values[i] for values in runs], name=name)
        assert (stats[name].count, stats[name].min, stats[name].max) == (direct.count, direct.min, direct.max)
        np.testing.assert_array_equal(stats[name].hist, direct.hist)


def test_a_fixed_batch_model_is_written_compared_and_timed_at_its_batch_size(fixed_run) -> None:
    model, data, result, x = fixed_run
    assert result.int8.input_specs()[0].shape == (4, 3, 16, 16)
    comparison = compare_models(model, result.int8, data, latency_runs=3)
    float_session, int8_session = cpu_session(model.proto), cpu_session(result.int8.proto)
    expected = ErrorAccumulator()
    for batch in (x[:4], x[4:]):
        expected.update(float_session.run(None, {"x": batch})[0], int8_session.run(None, {"x": batch})[0])
    got = comparison.errors.outputs["logits"]
    # the pass's sessions expose activations too, which changes ONNX Runtime's float rounding slightly
    assert (got.count, got.sqnr_db, got.max_abs) == (expected.count, pytest.approx(expected.sqnr_db, rel=1e-5),
                                                     pytest.approx(expected.max_abs, rel=1e-4))
    assert comparison.errors.samples == 8 and comparison.int8.latency_ms > 0
    np.testing.assert_array_equal(first_run_feed(model, data)["x"], x[:4])  # what latency is measured on


def test_a_fixed_batch_model_explains_a_sample_from_its_batch(fixed_run) -> None:
    _, data, result, x = fixed_run
    e = explain_node(result.int8, "/block/pw/Conv", data, sample=5, float_model=result.prepared.model)
    assert e.checks[1].exact, e.checks[1].summary()  # ONNX Runtime's formula on x_q gives its own output
    exposed = cpu_session(result.int8.proto, outputs=[e.x.tensor]).run([e.x.tensor], {"x": x[4:]})[0]
    np.testing.assert_array_equal(e.x_q, exposed[1:2])
    assert e.sqnr_db is not None and e.sqnr_db > 20  # the float value is of the same sample


def token_mlp(batch: int, rows: int | None = None) -> onnx.ModelProto:
    """x [batch, 5, 16] through MatMul + Add + Relu + MatMul. With a fixed batch, pre-processing fuses the first
    MatMul + Add into a Gemm on x reshaped to [batch * 5, 16]. ``rows`` reshapes x to [rows, -1] first instead."""
    rng = np.random.default_rng(0)
    width = 16 if rows is None else batch * 5 * 16 // rows
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("W1", (width, 32)), ("B1", (32,)), ("W2", (32, 8)))]
    nodes = [helper.make_node("MatMul", ["x" if rows is None else "xr", "W1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "B1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "W2"], ["y"], name="mm2")]
    if rows is not None:
        inits.append(numpy_helper.from_array(np.array([rows, width], np.int64), "rows"))
        nodes.insert(0, helper.make_node("Reshape", ["x", "rows"], ["xr"], name="reshape"))
    graph = helper.make_graph(
        nodes, "token_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 5, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5, 8] if rows is None else [rows, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def tokens(count: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((count, 5, 16)).astype(np.float32)


@pytest.mark.parametrize("sample", [0, 3, 6])
def test_a_gemm_on_batch_times_tokens_rows_explains_the_samples_own_rows(tmp_path, sample: int) -> None:
    """The Gemm's [20, 32] output holds 4 samples of 5 rows each: sample 3 is rows 15 to 19, not row 3."""
    x = tokens(8)
    model, data = model_and_data(tmp_path, token_mlp(4), x)
    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    e = explain_node(result.int8, "mm1", data, sample=sample, float_model=result.prepared.model)
    assert e.op_type == "Gemm" and e.runtime.shape == (5, 32)
    batch, row = x[sample - sample % 4:][:4], sample % 4
    exposed = cpu_session(result.int8.proto, outputs=[e.x.tensor, e.y.tensor]).run(
        [e.x.tensor, e.y.tensor], {"x": batch})
    np.testing.assert_array_equal(e.x_q, exposed[0][5 * row:5 * row + 5])
    np.testing.assert_array_equal(e.runtime, exposed[1][5 * row:5 * row + 5])
    assert [check.total for check in e.checks] == [160, 160] and e.checks[1].exact, e.checks[1].summary()
    assert e.example.runtime_value == e.runtime[e.example.index]
    assert any(f"sample {sample} is its rows {5 * row} to {5 * row + 4}" in note for note in e.notes)
    assert e.sqnr_db is not None and e.sqnr_db > 20  # the float rows are the same sample's


def test_explaining_the_last_samples_runs_one_batch_and_needs_no_whole_batches(tmp_path) -> None:
    """Sample 5 of 6 with a batch fixed at 4: it runs with samples 2 to 5 rather than asking for 4 or 8 samples."""
    x = tokens(6)
    model, data = model_and_data(tmp_path, token_mlp(4), x)
    result = quantize_model(model, data.limited(4), Recipe(), tmp_path / "model.int8.onnx")
    e = explain_node(result.int8, "mm1", data, sample=5)
    exposed = cpu_session(result.int8.proto, outputs=[e.x.tensor]).run([e.x.tensor], {"x": x[2:6]})[0]
    np.testing.assert_array_equal(e.x_q, exposed[15:20])
    assert e.checks[1].exact and any("ran with samples 2 to 5" in note for note in e.notes)
    with pytest.raises(Q8Error, match=r"fixed at 4, so a run takes 4 samples; the data has only 3\.$"):
        explain_node(result.int8, "mm1", data.limited(3), sample=1)


def test_an_output_whose_rows_do_not_split_into_samples_is_not_explained(tmp_path) -> None:
    """x [4, 5, 16] reshaped to [10, 32]: a row mixes samples, so no part of the output is sample 1's alone."""
    model, data = model_and_data(tmp_path, token_mlp(4, rows=10), tokens(4))
    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    node = next(n.name for n in result.int8.graph.nodes if n.op_type in ("Gemm", "MatMul") and "mm1" in n.name)
    with pytest.raises(Q8Error) as error:
        explain_node(result.int8, node, data, sample=1)
    assert str(error.value) == (f"{node}'s output has shape [10, 32]: its leading axis does not split into the 4 "
                                "samples of a run, so sample 1's part is unknown.")


def time_major_matmul() -> onnx.ModelProto:
    """x [2, 4, 8] (batch fixed at 2) transposed to time-major [4, 2, 8], then MatMul and Relu: the output
    [4, 2, 6] splits into 2 blocks of rows, yet every row holds both samples."""
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32), "W")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="tr", perm=[1, 0, 2]),
             helper.make_node("MatMul", ["xt", "W"], ["m"], name="mm"),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "time_major", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 2, 6])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_a_time_major_output_is_refused_rather_than_explained_on_another_samples_rows(tmp_path, capfd) -> None:
    """Rows 2 to 3 of the [4, 2, 6] output are time steps 2 and 3 of both samples, not sample 1: the checks
    would still pass, as runtime and reference read the same wrong rows, so explain must refuse."""
    model = save(time_major_matmul(), tmp_path / "tm.onnx")
    data = write_npz(tmp_path / "seq.npz", x=tokens(6)[:, :4, :8])
    out = tmp_path / "tm.int8.onnx"
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(out)]) == 0
    capfd.readouterr()
    for sample in (0, 1, 5):
        assert one_line_error(capfd, ["explain", str(out), "--node", "mm", "--data", str(data), "--sample",
                                      str(sample)]) == (
            f"mm's output of shape [4, 2, 6] mixes the batch's 2 samples (a Transpose before it?): changing sample "
            f"{sample}'s inputs changes it outside the part that would be sample {sample}'s, so that part cannot be "
            "shown; use a model with a batch of 1 or an unfixed batch.")


def test_a_fixed_batch_of_token_ids_explains_the_samples_own_rows(tmp_path) -> None:
    """Token ids cannot take noise (an id out of range fails): to find its rows, the sample borrows the next one's."""
    proto = transformer_block(width=32)
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 4
    ids = np.random.default_rng(0).integers(0, 100, (8, 8))
    model = load_model(save(proto, tmp_path / "model.onnx"))
    data = load_data(write_npz(tmp_path / "ids.npz", ids=ids), model)
    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    e = explain_node(result.int8, "/mlp/up/MatMul", data, sample=6)
    exposed = cpu_session(result.int8.proto, outputs=[e.x.tensor]).run([e.x.tensor], {"ids": ids[4:]})[0]
    np.testing.assert_array_equal(e.x_q, exposed[16:24])
    assert e.checks[1].exact, e.checks[1].summary()


@pytest.mark.parametrize("proto, runs", [(small_cnn(), [1]), (fixed_batch_cnn(1), [1]), (fixed_batch_cnn(4), [4, 4])],
                         ids=["dynamic", "fixed-1", "fixed-4"])
def test_only_a_batch_of_several_is_run_again_to_find_the_samples_part(tmp_path, monkeypatch, proto, runs) -> None:
    model, data = model_and_data(tmp_path, proto, images(8))
    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    sizes: list[int] = []

    class Recording(BatchRunner):
        def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            sizes.append(len(feed["x"]))
            return super().run(names, feed)

    monkeypatch.setattr("q8studio.core.explainrun.BatchRunner", Recording)
    e = explain_node(result.int8, "/block/pw/Conv", data, sample=5)
    assert sizes == runs and e.checks[1].exact


def test_a_fixed_batch_models_tensor_probe_compares_whole_batches(fixed_run) -> None:
    _, data, result, x = fixed_run
    probe = TensorProbe(result.prepared.model, result.int8)
    compared = probe.compare("logits", data, samples=6)
    same = cpu_session(result.prepared.model.proto, outputs=list(probe.pairs), threads=1)
    expected = same.run(["logits"], {"x": x[:4]})[0]
    assert compared.samples == 4
    np.testing.assert_array_equal(compared.float_values, expected.ravel())


def test_a_fixed_batch_models_tensor_probe_compares_the_whole_batches_its_data_holds(fixed_run, tmp_path) -> None:
    """16 samples wanted of 10, with the batch fixed at 4: the first 8, not all 10, which cannot run."""
    model, _, result, _ = fixed_run
    x = images(10)
    ten = load_data(write_npz(tmp_path / "ten.npz", x=x), model)
    assert [first_whole_batches(model, ten, wanted).count for wanted in (16, 10, 9, 6, 4, 1)] == [8, 8, 8, 4, 4, 4]
    probe = TensorProbe(result.prepared.model, result.int8)
    compared = probe.compare("logits", ten, samples=16)
    same = cpu_session(result.prepared.model.proto, outputs=list(probe.pairs), threads=1)
    expected = np.concatenate([same.run(["logits"], {"x": x[i:i + 4]})[0] for i in (0, 4)])
    assert compared.samples == 8
    np.testing.assert_array_equal(compared.float_values, expected.ravel())


def test_samples_that_are_not_whole_batches_are_a_one_line_error(fixed_run, tmp_path) -> None:
    model, data, result, _ = fixed_run
    ten = load_data(write_npz(tmp_path / "ten.npz", x=images(10)), model)
    with pytest.raises(Q8Error) as calibrating:
        collect_statistics(model, ten)
    with pytest.raises(Q8Error) as comparing:
        analyse_errors(model, result.int8, ten)
    assert str(calibrating.value) == str(comparing.value) == NOT_A_MULTIPLE
    with pytest.raises(Q8Error) as timing:
        measure_latency(model, result.int8, data.limited(3))
    assert str(timing.value) == (
        "The model's batch axis is fixed at 4, so the sample count must be a multiple of 4 (got 3); "
        "use at least 4 samples."  # data of 10 limited to 3: the data was not what was short
    )


def test_cli_quantizes_and_evaluates_a_fixed_batch_model(tmp_path, capfd) -> None:
    model = save(fixed_batch_cnn(4), tmp_path / "fixed.onnx")
    eight, ten = write_npz(tmp_path / "8.npz", x=images(8)), write_npz(tmp_path / "10.npz", x=images(10))
    out = tmp_path / "fixed.int8.onnx"
    assert main(["quantize", str(model), "--calib", str(eight), "-o", str(out)]) == 0
    assert main(["evaluate", str(model), str(out), "--data", str(ten), "--samples", "8", "--latency-runs", "2"]) == 0
    assert capfd.readouterr().err == ""
    assert one_line_error(capfd, ["evaluate", str(model), str(out), "--data", str(ten)]) == NOT_A_MULTIPLE
    again = tmp_path / "again.int8.onnx"
    assert one_line_error(capfd, ["quantize", str(model), "--calib", str(ten), "-o", str(again)]) == NOT_A_MULTIPLE
    assert not again.exists()


def test_cli_quantize_measures_its_layer_errors_on_whole_batches(tmp_path, capfd) -> None:
    """--samples 8 of 10 calibrates on two batches; the error table then runs on those 8, not all 10,
    and on whole batches of 3 when 3 does not divide the 64 samples the table is measured on."""
    ten = write_npz(tmp_path / "10.npz", x=images(10))
    model = save(fixed_batch_cnn(4), tmp_path / "fixed.onnx")
    assert main(["quantize", str(model), "--calib", str(ten), "--samples", "8", "-o", str(tmp_path / "a.onnx")]) == 0
    seventy = write_npz(tmp_path / "70.npz", x=images(70))
    three = save(fixed_batch_cnn(3), tmp_path / "three.onnx")
    report = tmp_path / "r.json"
    assert main(["quantize", str(three), "--calib", str(seventy), "--samples", "69", "-o", str(tmp_path / "b.onnx"),
                 "--report", str(report)]) == 0
    assert capfd.readouterr().err == ""
    assert json.loads(report.read_text())["layer_errors_on_calibration"]["samples"] == 63


# A dynamic batch axis that only runs one sample


def test_a_rejected_batch_and_the_rest_of_the_pass_run_one_sample_at_a_time(tmp_path) -> None:
    model, data = model_and_data(tmp_path, single_sample_cnn(), images(20))
    session = RecordingSession(model.proto)
    runner = BatchRunner(model, session)  # type: ignore[arg-type]
    outputs = [runner.run(None, feed)[0] for feed in runner.feeds(data)]
    assert session.sizes == [8] + [1] * 20  # the first batch once, then never a batch again
    alone = cpu_session(model.proto)
    per_sample = [alone.run(None, {"x": sample[None]})[0] for sample in images(20)]
    np.testing.assert_array_equal(np.concatenate(outputs), np.concatenate(per_sample))


@pytest.mark.parametrize("proto, sizes", [
    (small_cnn(), [8, 8, 4]), (fixed_batch_cnn(1), [1] * 20), (fixed_batch_cnn(4), [4] * 5),
], ids=["dynamic", "fixed-1", "fixed-4"])
def test_models_that_take_their_batches_run_once_per_batch(tmp_path, proto: onnx.ModelProto, sizes: list[int]) -> None:
    model, data = model_and_data(tmp_path, proto, images(20))
    session = RecordingSession(model.proto)
    runner = BatchRunner(model, session)  # type: ignore[arg-type]
    for feed in runner.feeds(data):
        runner.run(None, feed)
    assert session.sizes == sizes



# A dynamic batch axis whose runs would return too much


def any_size_cnn() -> onnx.ModelProto:
    """small_cnn taking images of any size: how large its activations are is known only once it has run."""
    model = small_cnn()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.checker.check_model(model)
    return model


def exposed_bytes_of_one_sample(model: LoadedModel, names: list[str]) -> int:
    values = cpu_session(model.proto, outputs=names).run(names, {"x": images(1)})
    return sum(value.nbytes for value in values)


@pytest.mark.parametrize("proto, first", [(small_cnn(), 2), (any_size_cnn(), 1)], ids=["declared", "any-size"])
def test_runs_take_as_many_samples_as_keep_their_outputs_within_the_budget(
    tmp_path, monkeypatch, proto: onnx.ModelProto, first: int
) -> None:
    """With every activation exposed, a run of 8 samples can return gigabytes: a run takes as many as
    fit, known from the outputs' declared shapes or else from the first run, of one sample."""
    model, data = model_and_data(tmp_path, proto, images(20))
    names = tensors_to_calibrate(model.proto)
    budget = int(2.5 * exposed_bytes_of_one_sample(model, names))
    monkeypatch.setattr("q8studio.core.session.RUN_OUTPUT_BYTES", budget)
    session = RecordingSession(model.proto, outputs=names)
    runner = BatchRunner(model, session)  # type: ignore[arg-type]
    returned = [sum(value.nbytes for value in runner.run(names, feed)) for feed in runner.feeds(data)]
    assert session.sizes[0] == first and max(session.sizes) == 2 and sum(session.sizes) == 20
    assert max(returned) <= budget


@pytest.mark.parametrize("proto", [small_cnn(), any_size_cnn()], ids=["declared", "any-size"])
def test_statistics_are_the_same_whatever_the_samples_per_run(tmp_path, monkeypatch, proto: onnx.ModelProto) -> None:
    model, data = model_and_data(tmp_path, proto, images(20))
    by_eight = collect_statistics(model, data)
    monkeypatch.setattr("q8studio.core.session.RUN_OUTPUT_BYTES", 1)  # one sample a run
    one_by_one = collect_statistics(model, data)
    for name, stats in by_eight.items():
        other = one_by_one[name]
        assert (other.count, other.min, other.max, other.ema_min, other.ema_max) == (
            stats.count, stats.min, stats.max, stats.ema_min, stats.ema_max)
        np.testing.assert_array_equal(other.hist, stats.hist)

def test_a_single_sample_model_is_calibrated_and_compared_as_sample_by_sample_runs(tmp_path) -> None:
    x = images(10)
    model, data = model_and_data(tmp_path, single_sample_cnn(), x)
    names = tensors_to_calibrate(model.proto)
    stats = collect_statistics(model, data, names=names)
    session = cpu_session(model.proto, outputs=names)
    runs = [session.run(names, {"x": sample[None]}) for sample in x]
    for i, name in enumerate(names):
        direct = collect_tensor_stats([values[i] for values in runs], name=name)
        assert (stats[name].count, stats[name].min, stats[name].max) == (direct.count, direct.min, direct.max)
        np.testing.assert_array_equal(stats[name].hist, direct.hist)

    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    errors = analyse_errors(result.prepared.model, result.int8, data)
    float_session, int8_session = cpu_session(result.prepared.model.proto), cpu_session(result.int8.proto)
    expected = ErrorAccumulator()
    float_top, int8_top = [], []
    for sample in x:
        reference, approx = (s.run(None, {"x": sample[None]})[0] for s in (float_session, int8_session))
        expected.update(reference, approx)
        float_top.append(reference.argmax())
        int8_top.append(approx.argmax())
    got = errors.outputs["logits"]
    # the pass's sessions expose activations too, which changes ONNX Runtime's float rounding slightly
    assert (got.count, got.sqnr_db, got.max_abs) == (expected.count, pytest.approx(expected.sqnr_db, rel=1e-5),
                                                     pytest.approx(expected.max_abs, rel=1e-4))
    assert errors.agreement == np.mean(np.array(float_top) == np.array(int8_top))


def single_sample_cnn_with_a_scalar() -> onnx.ModelProto:
    """single_sample_cnn that also returns the sum of its logits, a scalar with no sample axis."""
    model = single_sample_cnn()
    model.graph.node.append(helper.make_node("ReduceSum", ["logits"], ["total"], name="total", keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info("total", TensorProto.FLOAT, []))
    onnx.checker.check_model(model)
    return model


def test_a_scalar_output_of_one_sample_runs_gets_one_value_per_sample(tmp_path) -> None:
    x = images(10)
    model, data = model_and_data(tmp_path, single_sample_cnn_with_a_scalar(), x)
    runner = BatchRunner(model, cpu_session(model.proto))
    totals = np.concatenate([runner.run(["total"], feed)[0] for feed in runner.feeds(data)])
    alone = cpu_session(model.proto)
    np.testing.assert_array_equal(totals, [alone.run(["total"], {"x": sample[None]})[0] for sample in x])

    result = quantize_model(model, data, Recipe(), tmp_path / "model.int8.onnx")
    errors = analyse_errors(model, result.int8, data)
    assert errors.outputs["total"].count == 10 and errors.outputs["logits"].count == 10 * 10


def test_one_sample_outputs_whose_shapes_differ_are_a_one_line_error() -> None:
    with pytest.raises(Q8Error, match="its output 'ids' has a different shape from one sample to the next"):
        join_samples("ids", [np.zeros((1, 3)), np.zeros((1, 4))])


def test_cli_quantizes_a_single_sample_model_without_onnx_runtime_logging(tmp_path, capfd) -> None:
    model = save(single_sample_cnn(), tmp_path / "single.onnx")
    data = write_npz(tmp_path / "x.npz", x=images(10))
    out = tmp_path / "single.int8.onnx"
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(out)]) == 0
    assert main(["evaluate", str(model), str(out), "--data", str(data), "--latency-runs", "2"]) == 0
    assert capfd.readouterr().err == ""


# Data ONNX Runtime cannot run


def test_token_ids_out_of_range_are_one_line_without_onnx_runtime_logging(tmp_path, capfd) -> None:
    model = save(transformer_block(), tmp_path / "block.onnx")
    ids = np.random.default_rng(0).integers(0, 100, (4, 8))
    ids[2, 5] = 150  # the embedding table has 100 rows
    data = write_npz(tmp_path / "ids.npz", ids=ids)
    out = tmp_path / "block.int8.onnx"
    message = one_line_error(capfd, ["quantize", str(model), "--calib", str(data), "-o", str(out)])
    assert message.startswith("ONNX Runtime could not run block.onnx on this data: its Gather node ")
    assert "idx=150" in message and "[ONNXRuntimeError]" not in message
    assert not out.exists()


def test_a_single_sample_that_fails_is_the_users_data(tmp_path) -> None:
    model, data = model_and_data(tmp_path, single_sample_cnn(), images(8))
    runner = BatchRunner(model, cpu_session(model.proto))
    with pytest.raises(Q8Error) as raised:
        runner.run(None, {"y": images(8)})
    assert str(raised.value) == ORT_FAILED + "Required inputs (['x']) are missing from input feed (['y'])."


def test_evaluating_models_with_different_inputs_says_so_before_running(tmp_path, capfd) -> None:
    renamed = small_cnn()
    renamed.graph.input[0].name = renamed.graph.node[0].input[0] = "image"
    int8_source = load_model(save(renamed, tmp_path / "renamed.onnx"))
    x = images(8)
    quantize_model(int8_source, load_data(write_npz(tmp_path / "image.npz", image=x), int8_source), Recipe(),
                   tmp_path / "renamed.int8.onnx")
    model = save(small_cnn(), tmp_path / "cnn.onnx")
    data = write_npz(tmp_path / "x.npz", x=x)
    argv = ["evaluate", str(model), str(tmp_path / "renamed.int8.onnx"), "--data", str(data)]
    assert one_line_error(capfd, argv) == (
        "The float32 and int8 models take different inputs (float32: x; int8: image): "
        "compare a model with its own int8 version."
    )


def test_evaluating_an_unrelated_int8_model_with_the_same_names_says_so(tmp_path, capfd) -> None:
    """Models exported by one tool share input and tensor names; the shapes tell them apart."""
    wider = load_model(save(small_cnn(channels=16), tmp_path / "wide.onnx"))
    x = images(8)
    quantize_model(wider, load_data(write_npz(tmp_path / "x.npz", x=x), wider), Recipe(), tmp_path / "wide.int8.onnx")
    model = save(small_cnn(), tmp_path / "cnn.onnx")
    argv = ["evaluate", str(model), str(tmp_path / "wide.int8.onnx"), "--data", str(tmp_path / "x.npz")]
    message = one_line_error(capfd, argv)
    assert message.startswith("The models disagree on the shape of ") and "[8, 8, 16, 16]" in message
    assert message.endswith("compare a model with its own int8 version.")


def test_a_fixed_batch_of_free_sized_images_keeps_the_sample_count_advice(tmp_path) -> None:
    """[4, 3, H, W]: axis 0 is the batch, fixed; the free H and W are no batch axis, so the advice is a count."""
    proto = fixed_batch_cnn(4)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    model, ten = model_and_data(tmp_path, proto, images(10))
    with pytest.raises(Q8Error) as calibrating:
        collect_statistics(model, ten)
    assert str(calibrating.value) == NOT_A_MULTIPLE
