"""One measured run of the calibration benchmark, in a process of its own so that its peak RSS is its own.

    python calibration_worker.py {q8studio,ort,float} --model M --data D.npz --input NAME
        --samples N --batch B [--method M --percentile P --granularity G --output OUT.onnx] --result R.json

``q8studio`` quantizes through q8studio's core, ``ort`` runs onnxruntime's ``quant_pre_process`` and
``quantize_static``, ``float`` runs the float model over the samples (the time floor). Libraries are
imported before the clock starts; the timings are written to ``--result`` as JSON (onnxruntime's
calibrators print to stdout, so stdout is left to them).

torch is hidden, as in a plain ``pip install q8studio`` (the development environment has it only to
regenerate the demo): onnxruntime's ``quant_pre_process`` would otherwise import it whenever it is
installed, adding about a second and 190 MB to every run of either tool.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

if TYPE_CHECKING:
    from onnxruntime.quantization import CalibrationDataReader

WORKERS = ("q8studio", "ort", "float")
METHODS = ("minmax", "percentile", "entropy")


def npz_batches(path: Path, key: str, samples: int, batch: int) -> Iterator[np.ndarray]:
    """The first ``samples`` rows of array ``key`` of an uncompressed ``.npz``, ``batch`` rows at a time, lazily."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for start in range(0, min(samples, shape[0]), batch):
            count = min(batch, samples - start, shape[0] - start)
            yield np.frombuffer(stream.read(count * row_bytes), dtype=dtype).reshape((count, *shape[1:]))


def npz_reader(path: Path, key: str, samples: int, batch: int) -> "CalibrationDataReader":
    """onnxruntime's data-reader interface over :func:`npz_batches` (the feed is ``{key: batch}``)."""
    from onnxruntime.quantization import CalibrationDataReader

    class NpzReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = npz_batches(path, key, samples, batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            rows = next(self.batches, None)
            return None if rows is None else {key: rows}

    return NpzReader()


def run_q8studio(args: argparse.Namespace) -> dict[str, object]:
    """Load, pre-process, calibrate, choose ranges and write the QDQ model with q8studio's core."""
    from q8studio.core.data import load_data
    from q8studio.core.model import load_model
    from q8studio.core.quantize import quantize_model
    from q8studio.core.recipe import Recipe

    recipe = Recipe(method=args.method, percentile=args.percentile, granularity=args.granularity, samples=args.samples)
    started = time.perf_counter()
    model = load_model(args.model)
    result = quantize_model(model, load_data(args.data, model), recipe, args.output)
    return {"seconds": time.perf_counter() - started, "phases": result.timings, "samples": result.calibration_samples}


def run_ort(args: argparse.Namespace) -> dict[str, object]:
    """onnxruntime's recommended path: ``quant_pre_process``, then ``quantize_static`` with a streaming reader."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    with tempfile.TemporaryDirectory(prefix="ort-bench-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        started = time.perf_counter()
        quant_pre_process(str(args.model), str(prepared))
        preprocess_s = time.perf_counter() - started
        quantize_static(
            str(prepared),
            str(args.output),
            npz_reader(args.data, args.input, args.samples, args.batch),
            quant_format=QuantFormat.QDQ,
            per_channel=args.granularity == "per-channel",
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "phases": {"preprocess_s": preprocess_s, "quantize_static_s": seconds - preprocess_s}}


def run_float(args: argparse.Namespace) -> dict[str, object]:
    """Plain float inference over the samples (session creation included): what calibration cannot beat."""
    import onnxruntime as ort

    started = time.perf_counter()
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    for batch in npz_batches(args.data, args.input, args.samples, args.batch):
        session.run(None, {args.input: batch})
    return {"seconds": time.perf_counter() - started}


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {
    "q8studio": run_q8studio, "ort": run_ort, "float": run_float,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One measured run of benchmarks/calibration.py.")
    parser.add_argument("worker", choices=WORKERS)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--input", required=True, help="the model input = the array key in the .npz")
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--method", choices=METHODS, default="minmax")
    parser.add_argument("--percentile", type=float, default=99.999)
    parser.add_argument("--granularity", choices=("per-tensor", "per-channel"), default="per-channel")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--result", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.modules["torch"] = None  # type: ignore[assignment]  # importlib then reports torch as not installed
    args.result.write_text(json.dumps(RUNNERS[args.worker](args)))


if __name__ == "__main__":
    main()
