"""The calibration benchmark's models and data, and the scoring of its int8 models.

Run as a subprocess of ``calibration.py`` (which must stay small: a child's ``ru_maxrss`` starts at
its parent's high-water mark), each command printing one JSON object on stdout:

    python calibration_models.py prepare {demo,squeezenet} --workdir W --calib N --eval M
    python calibration_models.py score --model FLOAT --data EVAL [--samples S] --latency-runs R INT8...
    python calibration_models.py sources
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx

from q8studio.core.data import Dataset, load_data
from q8studio.core.evaluate import measure_latency
from q8studio.core.metrics import measure
from q8studio.core.model import LoadedModel, load_model
from q8studio.core.session import batch_size, cpu_session

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "q8studio" / "resources" / "demo"
SQUEEZENET_OPSET = 13  # per-channel DequantizeLinear needs it; quantize_static alone lifts opset 9 only to 11,
# and its per-channel QDQ model then fails to load ("Unrecognized attribute: axis")
SQUEEZENET_SEED, EVAL_SEED = 20240501, 20240502
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
NOISE_OCTAVES = (4, 8, 16, 32, 64)


# --- models and data ---------------------------------------------------------------------------


def prepare(name: str, workdir: Path, calib_count: int, eval_count: int) -> dict[str, object]:
    """The model, calibration and evaluation files of a benchmark, built on first use."""
    if name == "demo":
        model = load_model(DEMO_DIR / "digits_cnn.onnx")
        calib, evaluation = DEMO_DIR / "calib.npz", DEMO_DIR / "test.npz"
        description = "digits_cnn.onnx (the bundled demo: 1x16x16 digits, 6 convolutions), calib.npz, labelled test.npz"
    else:
        path = workdir / f"squeezenet_opset{SQUEEZENET_OPSET}.onnx"
        if not path.exists():
            workdir.mkdir(parents=True, exist_ok=True)
            onnx.save(squeezenet_model(), str(path))
        model = load_model(path)
        key = model.graph.inputs[0]
        calib = synthetic_npz(workdir / f"squeezenet_calib_{calib_count}.npz", key, calib_count, SQUEEZENET_SEED)
        evaluation = synthetic_npz(workdir / f"squeezenet_eval_{eval_count}.npz", key, eval_count, EVAL_SEED)
        description = (
            f"squeezenet (onnx's light_squeezenet architecture from `tests/builders.py`, random He weights, "
            f"converted to opset {SQUEEZENET_OPSET}; 26 convolutions, 1x3x224x224), {calib_count} synthetic "
            f"calibration images, {eval_count} separate synthetic evaluation images, no labels"
        )
    return {
        "name": name, "description": description, "model": str(model.path), "calib": str(calib),
        "eval": str(evaluation), "input": model.graph.inputs[0], "batch": batch_size(model),
    }


def squeezenet_model() -> onnx.ModelProto:
    """tests/builders.py's squeezenet, raised from opset 9 so that per-channel QDQ is valid for both tools."""
    sys.path.insert(0, str(REPO / "tests"))
    from builders import light_model

    return onnx.version_converter.convert_version(light_model("squeezenet"), SQUEEZENET_OPSET)


def synthetic_npz(path: Path, key: str, count: int, seed: int, size: int = 224) -> Path:
    """``count`` smooth random colour images, ImageNet-normalised, as an uncompressed .npz (cached)."""
    if not path.exists():
        upsample = {octave: _interpolation_matrix(octave, size) for octave in NOISE_OCTAVES}
        images = np.stack([_smooth_image(np.random.default_rng([seed, i]), upsample) for i in range(count)])
        np.savez(path, **{key: images})
    return path


def _smooth_image(rng: np.random.Generator, upsample: dict[int, np.ndarray]) -> np.ndarray:
    """Noise at several resolutions, upsampled and summed with 1/f weights, then a random brightness,
    contrast and tint; image ``i`` depends only on (seed, i), so every prefix of a set is reproducible."""
    size = next(iter(upsample.values())).shape[0]
    texture = np.zeros((3, size, size))
    for octave, matrix in upsample.items():
        noise = rng.standard_normal((1, octave, octave)) + 0.4 * rng.standard_normal((3, octave, octave))
        texture += (matrix @ noise @ matrix.T) / octave
    texture /= texture.std()
    brightness, contrast = rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.3)
    tint = rng.uniform(-0.08, 0.08, (3, 1, 1))
    pixels = np.clip(brightness + tint + contrast * texture, 0.0, 1.0)
    return ((pixels - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]).astype(np.float32)


def _interpolation_matrix(source: int, target: int) -> np.ndarray:
    """(target x source) matrix of linear interpolation between ``source`` evenly spaced points."""
    position = np.linspace(0.0, source - 1.0, target)
    left = np.minimum(position.astype(int), source - 2)
    weight = position - left
    matrix = np.zeros((target, source))
    matrix[np.arange(target), left] = 1.0 - weight
    matrix[np.arange(target), left + 1] = weight
    return matrix


# --- scoring -----------------------------------------------------------------------------------


def score(float_path: Path, data_path: Path, samples: int | None, latency_runs: int,
          int8_paths: list[Path]) -> dict[str, object]:
    """Top-1 (with labels) or top-1 agreement with the float model, the output SQNR against the float
    model's output (how close the int8 model stays, where a few hundred samples leave top-1 gaps of
    one or two images), and median batch-1 latencies.

    Outputs are flattened per sample before the argmax, so [N, classes, 1, 1] classifiers count too.
    Latency is q8studio's ``measure_latency``: alternating runs of both models after warm-up.
    """
    float_model = load_model(float_path)
    data = load_data(data_path, float_model, samples=samples)
    reference_outputs = outputs(float_model, data)
    reference = reference_outputs.argmax(axis=1)
    truth = data.labels if data.labels is not None else reference
    models = {}
    for path in int8_paths:
        int8 = load_model(path)
        float_ms, int8_ms = measure_latency(float_model, int8, data, runs=latency_runs)
        found = outputs(int8, data)
        predicted = found.argmax(axis=1)
        models[str(path)] = {
            "score": float(np.mean(predicted == truth)),
            "changed": int(np.count_nonzero(predicted != reference)),  # samples whose top-1 differs from float's
            "output_sqnr_db": measure(reference_outputs, found).sqnr_db,  # as `q8studio evaluate` reports it
            "latency_ms": [float_ms, int8_ms],
        }
    return {
        "labelled": data.labels is not None,
        "count": data.count,
        "float_score": float(np.mean(reference == truth)),
        "models": models,
    }


def outputs(model: LoadedModel, data: Dataset) -> np.ndarray:
    """The model's first output for every sample, one row a sample."""
    session = cpu_session(model.proto)
    output = model.graph.outputs[0]
    found = [session.run([output], feed)[0] for feed in data.batches(batch_size(model))]
    return np.concatenate([out.reshape(len(out), -1) for out in found])


# --- which code is measured --------------------------------------------------------------------


def sources() -> dict[str, str]:
    """Short sha256 of clipping.py and of every q8studio module a benchmark run imports."""
    import q8studio.core.quantize  # noqa: F401  (the worker's imports; evaluate is already imported)

    modules = sorted((name, module.__file__) for name, module in sys.modules.items()
                     if name.startswith("q8studio") and getattr(module, "__file__", None))
    digest = hashlib.sha256()
    for name, path in modules:
        digest.update(name.encode() + b"\0" + Path(path).read_bytes())
    clipping = Path(sys.modules["q8studio.core.clipping"].__file__).read_bytes()
    return {"clipping": hashlib.sha256(clipping).hexdigest()[:12], "code": digest.hexdigest()[:12],
            "modules": str(len(modules))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Models, data and scoring for benchmarks/calibration.py.")
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare")
    prep.add_argument("name", choices=("demo", "squeezenet"))
    prep.add_argument("--workdir", type=Path, required=True)
    prep.add_argument("--calib", type=int, required=True)
    prep.add_argument("--eval", type=int, required=True)
    scoring = commands.add_parser("score")
    scoring.add_argument("--model", type=Path, required=True)
    scoring.add_argument("--data", type=Path, required=True)
    scoring.add_argument("--samples", type=int)
    scoring.add_argument("--latency-runs", type=int, required=True)
    scoring.add_argument("int8", type=Path, nargs="+")
    commands.add_parser("sources")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        result = prepare(args.name, args.workdir, args.calib, args.eval)
    elif args.command == "score":
        result = score(args.model, args.data, args.samples, args.latency_runs, args.int8)
    else:
        result = sources()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
