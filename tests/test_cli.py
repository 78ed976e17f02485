"""The command line as a user runs it: README commands, JSON output, one-line errors, exit codes."""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

import q8studio
from builders import LIGHT_MODELS, mlp, save, small_cnn, with_argmax, write_npz
from q8studio.__main__ import main
from q8studio.cli import COMMANDS, IMAGE_OPTIONS, build_parser
from q8studio.core.demo import demo_assets
from q8studio.core.evaluate import compare_models, measure_latency
from q8studio.core.imagefolder import ImagePreprocessing
from q8studio.core.profile import profile_models
from q8studio.core.recipe import Recipe
from q8studio.core.runcounts import LATENCY_RUNS, PROFILE_RUNS
from q8studio.core.speedup import keep_slow_float
from q8studio.core.workflow import quantize_and_compare

# The console script installed beside this interpreter, as a user's shell would find it.
Q8STUDIO = str(Path(sys.executable).with_name("q8studio"))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The README's quantize command on the demo, run once through the installed console script."""
    assets = demo_assets()
    out = tmp_path_factory.mktemp("demo")
    command = [
        Q8STUDIO, "quantize", str(assets.model), "--calib", str(assets.calibration), "--method", "entropy",
        "--granularity", "per-channel", "-o", str(out / "m.int8.onnx"), "--report", str(out / "r.json"),
        "--save-recipe", str(out / "recipe.json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=out, timeout=300)
    assert done.returncode == 0, done.stderr
    return {"int8": out / "m.int8.onnx", "report": out / "r.json", "recipe": out / "recipe.json", "dir": out}


def test_version_names_q8studio_and_the_libraries_it_computes_with() -> None:
    done = subprocess.run([Q8STUDIO, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr
    assert done.stdout == (f"q8studio {q8studio.__version__} (onnxruntime {onnxruntime.__version__}, onnx "
                           f"{onnx.__version__}, numpy {np.__version__}, Python {platform.python_version()})\n")


def test_inspect_json_describes_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(demo_assets().model), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ops"] == {
        "Conv": 6, "BatchNormalization": 6, "Relu": 6, "Add": 2, "MaxPool": 1, "GlobalAveragePool": 1,
        "Flatten": 1, "Gemm": 1,
    }
    assert summary["inputs"][0]["name"] == "image" and "/fc/Gemm" in summary["quantizable_nodes"]
    assert summary["already_quantized"] is False


def test_inspect_of_an_int8_model_lists_no_quantizable_layers(demo_int8_path: Path, capsys) -> None:
    assert main(["inspect", str(demo_int8_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  quantizable layers: none, the model is already quantized"


def test_quantize_report_holds_recipe_ranges_errors_and_timings(demo_run: dict[str, Path]) -> None:
    report = json.loads(demo_run["report"].read_text())
    assert report["recipe"]["method"] == "entropy" and report["recipe"]["granularity"] == "per-channel"
    assert report["calibration"]["samples"] == 500 and report["calibration"]["image_preprocessing"] is None
    image_range = report["ranges"]["image"]
    assert image_range["rmin"] <= 0.0 <= image_range["rmax"] <= image_range["observed_max"]
    layers = report["layer_errors_on_calibration"]["layers"]
    assert len(layers) >= 10 and [row["sqnr_db"] for row in layers] == sorted(row["sqnr_db"] for row in layers)
    assert all(w["axis"] is not None for w in report["weights"] if w["tensor"].endswith("weight"))
    assert set(report["timings"]) == {"preprocess_s", "plan_s", "calibrate_s", "ranges_s", "quantize_s"}
    # the quantizer that wrote the file and the CPU that timed it
    assert report["environment"]["software"]["onnxruntime"] == onnxruntime.__version__
    assert report["environment"]["machine"]["cpus"] >= 1 and report["environment"]["machine"]["cpu"]
    assert sorted(p.name for p in demo_run["dir"].iterdir()) == ["m.int8.onnx", "r.json", "recipe.json"]


def test_demo_per_channel_entropy_within_one_point_of_float(demo_run: dict[str, Path]) -> None:
    assets = demo_assets()
    done = subprocess.run(
        [Q8STUDIO, "evaluate", str(assets.model), str(demo_run["int8"]), "--data", str(assets.test), "--json",
         "--latency-runs", "5"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["float32"]["top1"] == pytest.approx(0.9889, abs=1e-3)
    assert result["int8"]["top1"] >= result["float32"]["top1"] - 0.01
    assert result["top1_agreement"] > 0.97
    assert result["int8"]["file_size"] < result["float32"]["file_size"]
    assert result["float32"]["latency_ms"] > 0 and result["int8"]["latency_ms"] > 0
    assert result["environment"]["software"]["onnx"] == onnx.__version__  # the runtime the latencies are of
    assert result["layers"] and result["outputs"]["logits"]["sqnr_db"] > 15
    # both commands name a layer the same way: a Conv folded with its BatchNorm by the BatchNorm
    quantize_layers = json.loads(demo_run["report"].read_text())["layer_errors_on_calibration"]["layers"]
    assert {(row["tensor"], row["node"]) for row in quantize_layers} == {(r["tensor"], r["node"]) for r in result["layers"]}


def test_saved_recipe_reproduces_the_model(demo_run: dict[str, Path], tmp_path: Path) -> None:
    assets = demo_assets()
    again = tmp_path / "again.onnx"
    code = main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--recipe",
                 str(demo_run["recipe"]), "-o", str(again)])
    assert code == 0
    assert again.read_bytes() == demo_run["int8"].read_bytes()


def test_report_records_image_preprocessing_that_reproduces_the_run(tmp_path: Path) -> None:
    """The report's image_preprocessing, given back as --preprocess, makes the same samples and model."""
    assets = demo_assets()
    images, settings = assets.model.parent / "images", assets.model.parent / "preprocess.json"
    first = ["quantize", str(assets.model), "--calib", str(images), "--preprocess", str(settings),
             "-o", str(tmp_path / "a.onnx"), "--report", str(tmp_path / "a.json")]
    assert main(first) == 0
    recorded = json.loads((tmp_path / "a.json").read_text())["calibration"]["image_preprocessing"]
    assert recorded == {**json.loads(settings.read_text())}
    (tmp_path / "recorded.json").write_text(json.dumps(recorded))
    for name, given in [("b", ["--preprocess", str(tmp_path / "recorded.json")]), ("c", ["--recipe", str(tmp_path / "a.json")]),
                        ("d", ["--preprocess", str(tmp_path / "a.json")])]:
        again = ["quantize", str(assets.model), "--calib", str(images), *given, "-o", str(tmp_path / f"{name}.onnx")]
        assert main(again) == 0
        assert (tmp_path / f"{name}.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes(), given


def test_a_report_of_an_image_folder_run_notes_its_preprocessing_unused_by_arrays(tmp_path: Path, capsys) -> None:
    """As a recipe setting its method ignores: noted, not refused (--preprocess with arrays is), and silent
    where the preprocessing is used."""
    assets = demo_assets()
    images, settings = assets.model.parent / "images", assets.model.parent / "preprocess.json"
    report = tmp_path / "img.json"
    assert main(["quantize", str(assets.model), "--calib", str(images), "--preprocess", str(settings), "--samples", "16",
                 "-o", str(tmp_path / "a.onnx"), "--report", str(report)]) == 0
    capsys.readouterr()
    again = ["quantize", str(assets.model), "--recipe", str(report), "-o", str(tmp_path / "b.onnx")]
    assert main([*again, "--calib", str(assets.calibration)]) == 0
    assert capsys.readouterr().err == ("q8studio: note: img.json sets image preprocessing, which calib.npz, a file of "
                                       "arrays, does not use.\n")
    assert main([*again, "--calib", str(images)]) == 0
    assert "note" not in capsys.readouterr().err


def test_the_preprocessing_settings_are_never_overwritten(tmp_path: Path, capsys) -> None:
    assets = demo_assets()
    settings = tmp_path / "pp.json"
    settings.write_text((assets.model.parent / "preprocess.json").read_text())
    before = settings.read_bytes()
    common = ["quantize", str(assets.model), "--calib", str(assets.model.parent / "images"), "--preprocess", str(settings)]
    assert main([*common, "-o", str(tmp_path / "m.onnx"), "--save-recipe", str(settings)]) == 2
    assert main([*common, "-o", str(settings)]) == 2
    err = capsys.readouterr().err
    assert err.count("over the preprocessing settings") == 2 and settings.read_bytes() == before


def test_labels_outside_the_classes_block_evaluation_only(tmp_path: Path, capsys) -> None:
    """Calibration ignores labels; evaluation refuses those the model cannot output, within --samples only."""
    assets = demo_assets()
    with np.load(assets.test) as test:
        images, labels = test["image"][:40], test["labels"][:40].copy()
    labels[30] = 10
    np.savez(tmp_path / "bad.npz", image=images, labels=labels)
    assert main(["quantize", str(assets.model), "--calib", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "m.onnx")]) == 0
    evaluate = ["evaluate", str(assets.model), str(tmp_path / "m.onnx"), "--data", str(tmp_path / "bad.npz"),
                "--latency-runs", "1"]
    capsys.readouterr()
    assert main(evaluate) == 2
    assert "'labels' range from 0 to 10, but the model's output has 10 classes (0 to 9)" in capsys.readouterr().err
    assert main([*evaluate, "--samples", "30"]) == 0


def test_explain_refuses_the_int8_model_as_its_own_float_model(demo_run: dict[str, Path], capsys) -> None:
    int8 = str(demo_run["int8"])
    assert main(["explain", int8, "--node", "/fc/Gemm", "--data", str(demo_assets().test), "--float", int8]) == 2
    assert "Both models are the same file" in capsys.readouterr().err


def test_evaluate_a_class_id_output_by_accuracy_not_sqnr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assets = demo_assets()
    model = save(with_argmax(onnx.load(assets.model)), tmp_path / "argmax.onnx")
    int8, report = tmp_path / "argmax.int8.onnx", tmp_path / "r.json"
    assert main(["quantize", str(model), "--calib", str(assets.calibration), "--samples", "64", "-o", str(int8),
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["layer_errors_on_calibration"]["outputs"]["class_id"]["sqnr_db"] is None
    capsys.readouterr()
    evaluate = ["evaluate", str(model), str(int8), "--data", str(assets.test), "--latency-runs", "1"]
    assert main(evaluate) == 0
    text = capsys.readouterr().out
    assert "output class_id: SQNR, cosine, max |error| n/a (class ids)" in text
    assert "n/a" not in text.replace("n/a (class ids)", "")
    assert main([*evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["float32"]["top1"] == pytest.approx(0.9889, abs=1e-3) and result["top1_agreement"] > 0.97
    assert result["outputs"]["class_id"] == {
        "sqnr_db": None, "mse": None, "cosine": None, "max_abs_error": None, "not_applicable": "class ids",
    }


def test_evaluate_says_when_the_float_file_does_not_store_its_weights(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """onnx's light_* models compute their weights at run time: a 15 KB float32 file beside a 1.2 MB int8 one."""
    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    data, int8 = write_npz(tmp_path / "data.npz", data_0=images), tmp_path / "squeezenet.int8.onnx"
    model = LIGHT_MODELS / "light_squeezenet.onnx"
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(int8)]) == 0
    capsys.readouterr()
    evaluate = ["evaluate", str(model), str(int8), "--data", str(data), "--latency-runs", "1"]
    assert main(evaluate) == 0
    assert "the float32 file does not store its 1,235,496 parameters" in capsys.readouterr().out
    assert main([*evaluate, "--json"]) == 0
    sizes = json.loads(capsys.readouterr().out)
    assert sizes["float32"]["unstored_parameters"] == 1_235_496 and sizes["int8"]["unstored_parameters"] == 0
    assert sizes["float32"]["file_size"] < 20_000


def test_histogram_values_reach_the_recipe_and_the_report(cnn_path: Path, cnn_data: Path, tmp_path: Path) -> None:
    """24 samples of 8x16x16 activations: a 100-value budget bins 1 value in 23 (the smallest prime
    >= 2048/100 that does not divide 2048); the 3x16x16 input is sampled too, 1 in 11."""
    report_path = tmp_path / "r.json"
    code = main(["quantize", str(cnn_path), "--calib", str(cnn_data), "--method", "percentile",
                 "--histogram-values", "100", "-o", str(tmp_path / "m.onnx"), "--report", str(report_path)])
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["recipe"]["histogram_values"] == 100
    strides = {name: (r["histogram_stride"], r["values"]) for name, r in report["ranges"].items()}
    assert strides["x"] == (11, 24 * 3 * 16 * 16)
    assert (23, 24 * 8 * 16 * 16) in strides.values()


def test_histogram_values_follow_the_method_a_recipe_sets(cnn_path: Path, cnn_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The recipe's method decides, as for --percentile: minmax bins nothing, entropy searches a histogram."""
    minmax, entropy = tmp_path / "minmax.json", tmp_path / "entropy.json"
    Recipe().save(minmax)
    Recipe(method="entropy").save(entropy)
    base = ["quantize", str(cnn_path), "--calib", str(cnn_data), "-o", str(tmp_path / "m.onnx"),
            "--histogram-values", "100", "--save-recipe", str(tmp_path / "used.json")]
    assert main([*base, "--recipe", str(minmax)]) == 2
    assert "--histogram-values applies only to --method" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert main([*base, "--recipe", str(entropy)]) == 0
    assert Recipe.load(tmp_path / "used.json") == Recipe(method="entropy", histogram_values=100)


def test_a_recipe_setting_its_method_ignores_is_noted_not_refused(cnn_path: Path, cnn_data: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """As an option it is refused; in a file it is kept, with a note: the window saves every setting it
    shows, and a recipe may be re-run with another --method."""
    recipe = tmp_path / "recipe.json"
    Recipe(method="percentile", percentile=99.9, histogram_values=100).save(recipe)
    base = ["quantize", str(cnn_path), "--calib", str(cnn_data), "--recipe", str(recipe)]
    assert main([*base, "-o", str(tmp_path / "p.onnx")]) == 0
    assert "note" not in capsys.readouterr().err
    saved = tmp_path / "m.json"
    assert main([*base, "--method", "minmax", "-o", str(tmp_path / "m.onnx"), "--save-recipe", str(saved)]) == 0
    assert capsys.readouterr().err == ("q8studio: note: recipe.json sets percentile 99.9 and histogram_values 100, "
                                       "which the method minmax does not use.\n")
    assert Recipe.load(saved) == Recipe(method="minmax", percentile=99.9, histogram_values=100)


def test_a_report_of_a_minmax_run_runs_again_as_a_recipe_without_a_note(cnn_path: Path, cnn_data: Path,
                                                                        tmp_path: Path, capsys) -> None:
    """The report holds the default percentile and histogram_values, which minmax does not use."""
    report = tmp_path / "r.json"
    assert main(["quantize", str(cnn_path), "--calib", str(cnn_data), "-o", str(tmp_path / "a.onnx"),
                 "--report", str(report)]) == 0
    recorded = json.loads(report.read_text())["recipe"]
    assert recorded["method"] == "minmax" and "percentile" in recorded and "histogram_values" in recorded
    capsys.readouterr()
    assert main(["quantize", str(cnn_path), "--calib", str(cnn_data), "-o", str(tmp_path / "b.onnx"),
                 "--recipe", str(report)]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "b.onnx").read_bytes() == (tmp_path / "a.onnx").read_bytes()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", COMMANDS)
def test_every_argument_of_every_command_says_what_it_is(command: str) -> None:
    actions = [a for a in _subcommands()[command]._actions if not isinstance(a, argparse._HelpAction)]
    assert [a.dest for a in actions if not a.help] == []


def _option_help(command: str, flag: str, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """One option's entry of ``COMMAND --help``, its wrapped lines joined."""
    monkeypatch.setenv("COLUMNS", "300")  # no line breaks inside values such as per-tensor
    with pytest.raises(SystemExit):
        main([command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if re.match(r"  -", line) and re.search(rf"(^|, ){re.escape(flag)}\b", line.strip()))
    entry = [lines[start]] + list(itertools.takewhile(lambda line: line.startswith("   "), lines[start + 1:]))
    return " ".join(" ".join(entry).split())


def _stated_default(command: str, flag: str, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> str:
    found = re.search(r"\(default: ([^)]*)\)$", _option_help(command, flag, capsys, monkeypatch))
    assert found, f"{command} {flag} states no default"
    return found.group(1)


@pytest.mark.parametrize("flag, field", [
    ("--method", "method"), ("--percentile", "percentile"), ("--ema-momentum", "ema_momentum"),
    ("--granularity", "granularity"), ("--activations", "activation_type"),
    ("--histogram-values", "histogram_values"),
])
def test_quantize_help_states_the_defaults_a_recipe_has(flag: str, field: str, capsys, monkeypatch) -> None:
    """These options default to None (a --recipe keeps its values), so the help reads them from Recipe."""
    assert _stated_default("quantize", flag, capsys, monkeypatch) == str(getattr(Recipe(), field))


def test_quantize_help_says_activations_are_asymmetric_by_default(capsys, monkeypatch) -> None:
    assert Recipe().symmetric_activations is False
    assert _stated_default("quantize", "--symmetric-activations", capsys, monkeypatch) == "off"


@pytest.mark.parametrize("command, flag", [
    ("evaluate", "--latency-runs"), ("evaluate", "--threads"), ("explain", "--sample"),
    ("profile", "--runs"), ("profile", "--latency-runs"), ("profile", "--threads"),
])
def test_help_states_the_value_a_command_uses_when_an_option_is_left_out(command: str, flag: str, capsys,
                                                                         monkeypatch) -> None:
    required = {"evaluate": ["f", "q", "--data", "d"], "explain": ["q", "--node", "n", "--data", "d"],
                "profile": ["f", "q", "--data", "d"]}[command]
    used = getattr(build_parser().parse_args([command, *required]), flag.lstrip("-").replace("-", "_"))
    assert _stated_default(command, flag, capsys, monkeypatch) == str(used)


@pytest.mark.parametrize("command", ["quantize", "evaluate", "profile"])
def test_every_threads_option_says_0_is_all_cores_and_the_default(command: str, capsys, monkeypatch) -> None:
    """quantize's said "(default: all cores)" where evaluate's and profile's said "0 = all cores (default: 0)";
    quantize takes 0 too, and leaving --threads out times as 0 does."""
    assert _option_help(command, "--threads", capsys, monkeypatch).endswith(", 0 = all cores (default: 0)")


def test_commands_and_core_functions_take_the_same_run_counts() -> None:
    """One default per kind of timing (core.runcounts): a command left to its defaults and the core called
    without counts measure alike; --keep-slow-float, which passes none, takes the core's."""
    evaluate = build_parser().parse_args(["evaluate", "f", "q", "--data", "d"])
    profile = build_parser().parse_args(["profile", "f", "q", "--data", "d"])
    assert (evaluate.latency_runs, profile.latency_runs, profile.runs) == (LATENCY_RUNS, LATENCY_RUNS, PROFILE_RUNS)
    defaults = {(f.__name__, name): p.default for f in (compare_models, measure_latency, quantize_and_compare,
                                                        profile_models, keep_slow_float)
                for name, p in inspect.signature(f).parameters.items() if name.endswith("runs")}
    assert defaults == {
        ("compare_models", "latency_runs"): LATENCY_RUNS, ("measure_latency", "runs"): LATENCY_RUNS,
        ("quantize_and_compare", "latency_runs"): LATENCY_RUNS, ("profile_models", "runs"): PROFILE_RUNS,
        ("profile_models", "latency_runs"): LATENCY_RUNS, ("keep_slow_float", "profile_runs"): PROFILE_RUNS,
        ("keep_slow_float", "latency_runs"): LATENCY_RUNS,
    }

def test_image_option_defaults_in_the_help_are_the_preprocessing_defaults(capsys, monkeypatch) -> None:
    """Written out in q8studio/cli/parser.py (parsing imports no numpy), so compared with ImagePreprocessing here."""
    defaults = ImagePreprocessing()
    numerator, denominator = _stated_default("evaluate", "--scale", capsys, monkeypatch).split("/")
    assert float(numerator) / float(denominator) == defaults.scale
    assert (float(_stated_default("evaluate", "--mean", capsys, monkeypatch)),) == defaults.mean
    assert (float(_stated_default("evaluate", "--std", capsys, monkeypatch)),) == defaults.std


def _long_options(text: str) -> set[str]:
    named = set()
    for no, name in re.findall(r"--(\[no-\])?([a-z][a-z0-9-]*)", text):
        named |= {f"--{name}", f"--no-{name}"} if no else {f"--{name}"}
    return named


def test_the_readme_names_every_option_of_every_command() -> None:
    """Each command's bullet names its options; the image options, shared by all, are named once."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## The command line"):readme.index("## The bundled demo")]
    per_command: dict[str, set[str]] = {command: set() for command in COMMANDS}
    for bullet in section.split("\n- `")[1:]:
        per_command[bullet.split()[0]] |= _long_options(bullet)
    missing = [
        f"{command} {action.option_strings[-1]}" for command, parser in _subcommands().items()
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction) and "-o" not in action.option_strings
        and not set(action.option_strings) & (_long_options(section) if action.dest in IMAGE_OPTIONS
                                              else per_command[command])
    ]
    assert missing == []


def test_parsing_a_command_line_imports_no_numpy() -> None:
    """Defaults that live in numpy-importing modules are read only when help is printed."""
    code = ("import sys; from q8studio.cli import build_parser\n"
            "build_parser().parse_args(['quantize', 'm.onnx', '--calib', 'd.npz', '-o', 'o.onnx'])\n"
            "assert 'numpy' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "q8studio", "inspect", str(demo_assets().model)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "quantizable layers (24)" in done.stdout


def _bad_model(d: Path) -> Path:
    path = d / "bad.onnx"
    path.write_bytes(small_cnn().SerializeToString()[:700])
    return path


def test_a_report_the_system_cannot_write_is_one_line(tmp_path, capsys) -> None:
    """/proc takes no new files, even for root, whose permission check passes up front."""
    assets = demo_assets()
    code = main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "8",
                 "-o", str(tmp_path / "o.onnx"), "--report", "/proc/q8studio-report.json"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("q8studio: error: Cannot write") and err.count("\n") == 1



def test_an_int8_model_the_system_cannot_write_is_blamed_on_the_file(tmp_path, capsys) -> None:
    """The quantizer itself fails to write there: the message names the file, not the quantizer."""
    assets = demo_assets()
    code = main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "8",
                 "-o", "/proc/q8studio-int8.onnx"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("q8studio: error: Cannot write /proc/q8studio-int8.onnx: ")

def test_special_files_are_never_replaced(tmp_path, capsys) -> None:
    """A pipe stands for /dev/null and the like, which a test must never risk replacing."""
    assets = demo_assets()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "8",
                 "-o", str(tmp_path / "o.onnx"), "--save-recipe", str(fifo)])
    assert code == 2 and "not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo() and not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, m, x: ["quantize", str(d / "missing.onnx"), "--calib", str(x), "-o", str(d / "o.onnx")], "No such file"),
        (lambda d, m, x: ["quantize", str(_bad_model(d)), "--calib", str(x), "-o", str(d / "o.onnx")], "truncated"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(demo_assets().test), "-o", str(d / "o.onnx")],
         "model expects inputs"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(m)], "Refusing to write -o over the source model"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--percentile", "120"],
         "percentile must be above 50 and at most 100 (got 120.0)"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--percentile", "1"],
         "percentile must be above 50 and at most 100 (got 1.0)"),  # the 1st to the 99th percentile, inverted
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--samples", "0"],
         "at least 1"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--histogram-values", "-5"],
         "histogram values per sample must be 0 (all) or more"),
        (lambda d, m, x: ["evaluate", str(m), str(d / "nothing.onnx"), "--data", str(x)], "No such file"),
        (lambda d, m, x: ["evaluate", str(m), str(m), "--data", str(x), "--latency-runs", "0"],
         "--latency-runs must be at least 1"),
        (lambda d, m, x: ["inspect", str(x)], "not an ONNX model"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--method", "entropy",
                          "--percentile", "99.9"], "--percentile applies only to --method percentile; the method is entropy"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--ema-momentum", "0.5"],
         "--ema-momentum applies only to --method ema; the method is minmax"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--histogram-values", "16"],
         "--histogram-values applies only to --method percentile, entropy or mse; the method is minmax"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--method", "ema",
                          "--histogram-values", "0"], "--histogram-values applies only to --method percentile, entropy"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--data", str(x),
                          "--threads", "1"], "--data and --threads only apply with --keep-slow-float"),
        (lambda d, m, x: ["quantize", str(m), "--calib", str(x), "-o", str(d / "o.onnx"), "--image-size", "8", "8",
                          "--color", "gray"], "--image-size, --color only apply to a folder of images, and x.npz is"),
        (lambda d, m, x: ["evaluate", str(m), str(d / "other.onnx"), "--data", str(x), "--layout", "NHWC"],
         "--layout only applies to a folder of images"),
        (lambda d, m, x: ["evaluate", str(m), str(d / "other.onnx"), "--data", str(x), "--threads", "-3"],
         "--threads must be at least 0 (got -3)"),
        (lambda d, m, x: ["profile", str(m), str(d / "other.onnx"), "--data", str(x), "--latency-runs", "-5"],
         "--latency-runs must be at least 0 (got -5)"),
    ],
    ids=["missing-model", "truncated", "mismatched-data", "overwrite-source", "bad-percentile", "inverted-percentile", "zero-samples",
         "negative-histogram-values", "missing-int8", "no-latency-runs", "npz-as-model", "percentile-unused",
         "ema-unused", "histogram-values-unused-minmax", "histogram-values-unused-ema", "timing-options-unused", "image-options-on-arrays", "image-options-on-arrays-evaluate",
         "negative-threads", "negative-latency-runs"],
)
def test_bad_input_one_line_error_nonzero_exit_no_output(tmp_path, capsys, make_args, message) -> None:
    model = save(small_cnn(), tmp_path / "cnn.onnx")
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 3, 16, 16), np.float32))
    before = model.read_bytes()
    assert main(make_args(tmp_path, model, data)) == 2
    err = capsys.readouterr().err
    assert err.startswith("q8studio: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.onnx").exists()
    assert model.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("argv, message", [
    (["quantize", "m.onnx"], "the following arguments are required: --calib, -o/--output"),
    (["quantize", "m.onnx", "--calib", "x.npz", "-o", "o.onnx", "--method", "foo"], "argument --method: invalid choice"),
    (["quantize", "m.onnx", "--calib", "x.npz", "-o", "o.onnx", "--bogus", "3"], "unrecognized arguments: --bogus 3"),
    (["evaluate", "f.onnx", "q.onnx", "--data", "x.npz", "--threads", "x"], "argument --threads: invalid int value"),
], ids=["missing-options", "bad-choice", "unknown-option", "bad-number"])
def test_usage_errors_are_one_line_that_points_to_the_command_help(argv: list[str], message: str, capsys) -> None:
    """argparse printed the whole usage first (14 lines for quantize); an unknown option was blamed on
    `q8studio`, whose --help is the window's."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"q8studio {argv[0]}: error: {message}")
    assert err.endswith(f" (see q8studio {argv[0]} --help)\n") and err.count("\n") == 1


@pytest.mark.parametrize(
    "outputs, message",
    [
        (lambda d: ["-o", str(d / "o.onnx"), "--report", str(d / "o.onnx")], "-o and --report name the same file"),
        (lambda d: ["-o", str(d / "o.onnx"), "--save-recipe", str(d / "cnn.onnx")], "over the source model"),
        (lambda d: ["-o", str(d / "o.onnx"), "--report", str(d / "x.npz")], "over the calibration data"),
        (lambda d: ["-o", str(d / "weights.bin")], "over the model's external data 'weights.bin'"),
        (lambda d: ["-o", str(d)], "is a folder"),
        (lambda d: ["-o", str(d / "x.npz" / "o.onnx")], "is a file, not a folder"),
        (lambda d: ["-o", str(d / "o.onnx"), "--report", str(d)], "is a folder"),
        (lambda d: ["-o", str(d / "o.onnx"), "--report", "-"], "--report -: q8studio writes files, not standard output"),
    ],
    ids=["report-over-output", "recipe-over-source", "report-over-data", "output-over-external-data",
         "output-is-folder", "output-under-file", "report-is-folder", "report-to-dash"],
)
def test_outputs_that_would_overwrite_inputs_or_cannot_be_written_are_refused_up_front(
    tmp_path, capsys, monkeypatch, outputs, message
) -> None:
    """Checked before calibrating: nothing is overwritten, nothing is written, no run is thrown away."""
    monkeypatch.chdir(tmp_path)  # a relative output such as '-' would land here
    model = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), str(model), save_as_external_data=True, location="weights.bin", size_threshold=0)
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 3, 16, 16), np.float32))
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert main(["quantize", str(model), "--calib", str(data), *outputs(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q8studio: error: ") and message in err and err.count("\n") == 1
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_dot_slash_dash_names_a_file_where_a_bare_dash_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """'-' is read as standard output and refused; './-' is a file the user named on purpose."""
    monkeypatch.chdir(tmp_path)
    model = save(small_cnn(), tmp_path / "cnn.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    assert main(["quantize", str(model), "--calib", "x.npz", "-o", "-"]) == 2
    assert "q8studio writes files, not standard output" in capsys.readouterr().err
    assert main(["quantize", str(model), "--calib", "x.npz", "-o", "./-"]) == 0
    assert onnx.load(str(tmp_path / "-")).graph.node


def test_quantizing_an_int8_model_is_refused_in_one_line(demo_run: dict[str, Path], tmp_path, capsys) -> None:
    calib = str(demo_assets().calibration)
    assert main(["quantize", str(demo_run["int8"]), "--calib", calib, "-o", str(tmp_path / "again.onnx")]) == 2
    err = capsys.readouterr().err
    assert "m.int8.onnx is already quantized" in err and "quantize its float model instead" in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["evaluate", "profile"])
@pytest.mark.parametrize(
    "order, message",
    [("swapped", "is already quantized (are the two swapped?)"), ("same", "Both models are the same file")],
    ids=["swapped", "same"],
)
def test_swapped_or_repeated_models_are_refused(demo_run, capsys, command, order, message) -> None:
    float_model, int8_model = str(demo_assets().model), str(demo_run["int8"])
    models = [int8_model, float_model] if order == "swapped" else [float_model, float_model]
    assert main([command, *models, "--data", str(demo_assets().test)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_hard_link_to_the_float_model_is_the_same_file(tmp_path, capsys) -> None:
    model = tmp_path / "float.onnx"
    model.write_bytes(demo_assets().model.read_bytes())
    os.link(model, tmp_path / "linked.onnx")
    assert main(["evaluate", str(model), str(tmp_path / "linked.onnx"), "--data", str(demo_assets().test)]) == 2
    assert "Both models are the same file" in capsys.readouterr().err


def test_an_int8_model_left_in_float_is_compared_with_a_note(tmp_path, capsys) -> None:
    """Keeping every layer in float is a legal outcome: compared, but the user is told."""
    copy = tmp_path / "all_float.onnx"
    copy.write_bytes(demo_assets().model.read_bytes())
    args = ["evaluate", str(demo_assets().model), str(copy), "--data", str(demo_assets().test), "--latency-runs", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "q8studio: note: all_float.onnx has no int8 operators" in captured.err
    assert "top-1 accuracy" in captured.out


def test_a_reader_that_stops_reading_loses_no_file(tmp_path: Path) -> None:
    """`quantize ... | head`: the pipe closes before the summary is out; the report is still written."""
    assets = demo_assets()
    command = [Q8STUDIO, "quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "16",
               "-o", str(tmp_path / "m.onnx"), "--report", str(tmp_path / "r.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # type: ignore[union-attr]
    err = process.stderr.read().decode()  # type: ignore[union-attr]
    assert process.wait(timeout=300) == 0 and err == ""
    assert json.loads((tmp_path / "r.json").read_text())["output_model"] == str(tmp_path / "m.onnx")


def test_a_full_disk_behind_standard_output_is_a_one_line_error(tmp_path: Path) -> None:
    model = demo_assets().model
    with open("/dev/full", "w") as full:
        process = subprocess.run([Q8STUDIO, "inspect", str(model)], stdout=full, stderr=subprocess.PIPE, text=True)
    assert process.returncode == 2
    assert process.stderr == "q8studio: error: Cannot write to standard output: No space left on device.\n"


def test_the_written_model_is_said_before_the_error_analysis(tmp_path, capsys, monkeypatch) -> None:
    """The analysis after the write takes a while: a user who stops it must know the int8 model is there."""
    import q8studio.core.evaluate

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(q8studio.core.evaluate, "analyse_errors", stopped)
    assets, out = demo_assets(), tmp_path / "m.onnx"
    assert main(["quantize", str(assets.model), "--calib", str(assets.calibration), "--samples", "8", "-o", str(out)]) == 130
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {out}") and out.is_file()
    assert captured.err == "q8studio: interrupted\n"


def test_quantizing_every_layer_in_float_says_no_layer_became_int8(tmp_path, capsys) -> None:
    model = tmp_path / "mlp.onnx"
    save(mlp(), model)
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32))
    every_node = [node.name for node in onnx.load(str(model)).graph.node]
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q.onnx"), "--exclude", *every_node]) == 0
    assert "  note: no layer became int8: the model computes in float throughout.\n" in capsys.readouterr().out


def test_exclude_given_twice_keeps_both_lists(tmp_path, capsys) -> None:
    """``--exclude a --exclude b`` used to keep only b in float, silently."""
    model = tmp_path / "mlp.onnx"
    save(mlp(), model)
    data = write_npz(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((8, 20)).astype(np.float32))
    assert main(["quantize", str(model), "--calib", str(data), "-o", str(tmp_path / "q.onnx"),
                 "--exclude", "gemm2", "--exclude", "relu2", "gemm3"]) == 0
    out = capsys.readouterr().out
    assert all(f"    {name} [Gemm]: kept in float on request\n" in out for name in ("gemm2", "gemm3"))
    assert "    relu2 [Relu]: kept in float on request\n" in out


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, q8studio.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module('q8studio.core.' + m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6') or m.startswith('q8studio.gui')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def window_args(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The arguments the window would have been started with, one list per start; no window opens."""
    from q8studio.gui import app

    started: list[list[str]] = []
    monkeypatch.setattr(app, "run_gui", lambda argv: started.append(argv) or 0)
    return started


@pytest.mark.parametrize("word, guess", [("qunatize", " (did you mean quantize?)"), ("inspekt", " (did you mean inspect?)"),
                                         ("EVALUATE", " (did you mean evaluate?)"), ("frobnicate", "")])
def test_a_mistyped_command_is_named_with_the_closest_command(word, guess, window_args, tmp_path, capsys,
                                                               monkeypatch) -> None:
    """Not taken as a model for the window, which answered "unrecognized arguments" (its options) or "no display"."""
    monkeypatch.chdir(tmp_path)
    model = save(mlp(), tmp_path / "m.onnx")
    assert main([word, str(model), "--calib", "calib.npz", "-o", "out.onnx"]) == 2
    err = capsys.readouterr().err
    assert err == (f"q8studio: error: unknown command '{word}'{guess}; the commands are {', '.join(COMMANDS)}, "
                   "and q8studio MODEL.onnx opens a model in the window.\n")
    assert window_args == [] and not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("first", ["some/missing.onnx", "missing.onnx", "model", "--demo"])
def test_a_model_path_or_an_option_still_opens_the_window(first, window_args, tmp_path, monkeypatch) -> None:
    """The window says what is wrong with a model that is not there: a missing path with a folder or
    a suffix, an existing file whatever its name, an option of the window."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").write_bytes(b"")
    assert main([first]) == 0
    assert window_args == [[first]]
