"""One measured run of the per-layer error benchmark, in a process of its own so that its peak RSS is its own.

    python layer_errors_worker.py {q8studio,ort,floor} --float F --int8 Q --data D.npz --input NAME
        --samples N --batch B --result R.json

``q8studio`` runs q8studio's streaming comparison (``analyse_errors``: per-layer SQNR, MSE, cosine and
max error, output errors, top-1), ``ort`` onnxruntime's ``qdq_loss_debug`` (expose every node output of
both models, ``collect_activations`` of each, ``create_activation_matching``,
``compute_activation_error``), ``floor`` plain inference of both models over the samples. Libraries
are imported before the clock starts; the result (seconds, per-tensor SQNR) goes to ``--result``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import onnxruntime as ort

from calibration_worker import npz_batches, npz_reader

WORKERS = ("q8studio", "ort", "floor")


def run_q8studio(args: argparse.Namespace) -> dict[str, object]:
    from q8studio.core.data import load_data
    from q8studio.core.evaluate import analyse_errors
    from q8studio.core.model import load_model

    started = time.perf_counter()
    float_model, int8_model = load_model(args.float), load_model(args.int8)
    errors = analyse_errors(float_model, int8_model, load_data(args.data, float_model, samples=args.samples))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "sqnr_db": {layer.tensor: layer.sqnr_db for layer in errors.layers}}


def run_ort(args: argparse.Namespace) -> dict[str, object]:
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    reader = partial(npz_reader, args.data, args.input, args.samples, args.batch)
    with tempfile.TemporaryDirectory(prefix="ort-layer-errors-") as tmp:
        started = time.perf_counter()
        augmented = {}
        for kind, path in (("float", args.float), ("int8", args.int8)):
            augmented[kind] = str(Path(tmp) / f"{kind}.onnx")
            modify_model_output_intermediate_tensors(str(path), augmented[kind])
        # q8studio's session settings (all graph optimisations, as deployed), not the tool's default
        # of none, so that both measure the int8 model the runtime really executes
        options = ort.SessionOptions()
        float_activations = collect_activations(augmented["float"], reader(), session_options=options)
        int8_activations = collect_activations(augmented["int8"], reader(), session_options=options)
        errors = compute_activation_error(create_activation_matching(int8_activations, float_activations))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sqnr_db": {name: e["xmodel_err"] for name, e in errors.items() if "xmodel_err" in e}}


def run_floor(args: argparse.Namespace) -> dict[str, object]:
    """Both models over the samples, nothing exposed (session creation included): what no comparison beats."""
    started = time.perf_counter()
    for path in (args.float, args.int8):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch in npz_batches(args.data, args.input, args.samples, args.batch):
            session.run(None, {args.input: batch})
    return {"seconds": time.perf_counter() - started}


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {
    "q8studio": run_q8studio, "ort": run_ort, "floor": run_floor,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One measured run of benchmarks/layer_errors.py.")
    parser.add_argument("worker", choices=WORKERS)
    parser.add_argument("--float", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--input", required=True, help="the model input = the array key in the .npz")
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    args.result.write_text(json.dumps(RUNNERS[args.worker](args)))


if __name__ == "__main__":
    main()
