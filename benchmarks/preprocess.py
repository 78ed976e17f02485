"""Pre-processing benchmark: q8studio's ``prepare_for_quantization`` vs onnxruntime's ``quant_pre_process``.

Both produce the model that is calibrated and quantized: BatchNorm folded, shapes inferred, and for
per-channel weights opset 13 (``DequantizeLinear`` needs it for ``axis``; ``quant_pre_process``
raises an opset-9 model to 11 only, so its users upgrade the result themselves). The models are the
onnx package's test architectures with random weights (tests/builders.py), as shipped at opset 9;
the large-weight ones show what the passes that serialize the whole model cost.

    python benchmarks/preprocess.py            # writes its section of benchmarks/RESULTS.md
    python benchmarks/preprocess.py --quick    # smoke run: two small models, RESULTS.md untouched
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process

from results_file import measured_with, record_section
from q8studio.core.model import load_model
from q8studio.core.preprocess import PER_CHANNEL_MIN_OPSET, prepare_for_quantization

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import light_model  # noqa: E402

TITLE = "Pre-processing: q8studio vs onnxruntime's quant_pre_process"
MODELS = ("vgg19", "zfnet512", "bvlc_alexnet", "resnet50", "inception_v2", "densenet121", "squeezenet")
QUICK_MODELS = ("squeezenet", "inception_v1")


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def q8studio_run(path: Path) -> tuple[float, float]:
    """(load, prepare) seconds: what ``q8studio quantize`` does before calibrating."""
    started = time.perf_counter()
    model = load_model(path)
    loaded = time.perf_counter()
    prepare_for_quantization(model, per_channel=True)
    return loaded - started, time.perf_counter() - loaded


def onnxruntime_run(path: Path, workdir: Path) -> tuple[float, float]:
    """(quant_pre_process, then the upgrade to opset 13) seconds, on files as its users run it."""
    prepared, upgraded = workdir / "ort.onnx", workdir / "ort13.onnx"
    pre_process = timed(lambda: quant_pre_process(str(path), str(prepared)))
    upgrade = timed(lambda: onnx.save(
        onnx.version_converter.convert_version(onnx.load(str(prepared)), PER_CHANNEL_MIN_OPSET), str(upgraded)))
    return pre_process, upgrade


def measure(name: str, workdir: Path, repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` alternating runs of each tool on one architecture."""
    path = workdir / f"{name}.onnx"
    onnx.save(light_model(name), str(path))
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(q8studio_run(path))
        theirs.append(onnxruntime_run(path, workdir))
    load, prepare = min(ours, key=sum)
    pre_process, upgrade = min(theirs, key=sum)
    return {"weights_mb": path.stat().st_size / 1e6, "load": load, "prepare": prepare,
            "ort_pre_process": pre_process, "ort_upgrade": upgrade}


def section(rows: dict[str, dict[str, float]], repeats: int, seconds: float) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {TITLE}", "",
        f"Measured {now} with {measured_with()} on the machine above (shared, so times are noisy): each figure is the fastest of "
        f"{repeats} alternating runs in one process, after a warm-up of both tools. Command: "
        f"`python benchmarks/preprocess.py` ({seconds / 60:.1f} min).", "",
        "- **q8studio**: `load_model` (parse, check, shape inference) then `prepare_for_quantization(per_channel=True)`: "
        "the steps of `quant_pre_process` that read no weight values (its upgrade to opset 11, symbolic shape "
        "inference where ONNX's own cannot shape every tensor) and ours to opset 13 run through it on the model's "
        "skeleton (large weights as graph inputs); its graph optimisation runs as it runs it, an ONNX Runtime session "
        "at the basic level that saves the optimised graph, with the weights handed over in memory.",
        "- **onnxruntime**: `quant_pre_process(model_file, output_file)` with its defaults, then "
        "`onnx.version_converter.convert_version(…, 13)` of its output, which per-channel QDQ needs "
        "(q8studio's own route before it used the skeleton). q8studio's result is onnxruntime's pre-processing of "
        "the model upgraded first (tests/test_preprocess.py): the same computation, a few constants named differently.",
        "- Models: the onnx package's test architectures (`light_*.onnx`, opset 9) with random He weights.", "",
        "| model | weights MB | q8studio load s | q8studio prepare s | ORT quant_pre_process s | ORT + opset 13 s "
        "| q8studio (load + prepare) / ORT |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        reference = row["ort_pre_process"] + row["ort_upgrade"]
        lines.append(
            f"| {name} | {row['weights_mb']:.0f} | {row['load']:.2f} | {row['prepare']:.2f} | "
            f"{row['ort_pre_process']:.2f} | {reference:.2f} | {(row['load'] + row['prepare']) / reference:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small models, one run, RESULTS.md untouched")
    args = parser.parse_args()
    models, repeats = (QUICK_MODELS, 1) if args.quick else (MODELS, 2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="q8studio-bench-prep-") as tmp:
        os.chdir(tmp)  # symbolic shape inference may drop a scratch file into the working directory
        measure("squeezenet", Path(tmp), 1)  # warm-up: imports (sympy, onnxruntime's tools) for both
        rows = {}
        for name in models:
            rows[name] = measure(name, Path(tmp), repeats)
            print(name, {key: round(value, 2) for key, value in rows[name].items()}, flush=True)
    text = section(rows, repeats, time.perf_counter() - started)
    print(text)
    if not args.quick:
        record_section(TITLE, text)


if __name__ == "__main__":
    main()
