"""What a Softmax output scale with a whole-number reciprocal buys: int8 error against float, three ways.

ONNX Runtime's QLinearSoftmax multiplies by K = floor(1/S_y) (q8studio.core.softmaxkernels). On a
Conv -> Softmax -> Conv network (tests/builders.py softmax_net, random weights, Gaussian-noise images) this
quantizes with q8studio as it ships (S_y = 1/K, q8studio.core.softmaxscales), with q8studio's calibrated
scale left as it is, and with onnxruntime's quantize_static (which fixes S_y = 1/255, so K = 254), and
measures on held-out samples: the SQNR of the Softmax output and of the network's output against the float
model, and how much of a probability a row's outputs add up to (1 where the kernel computes the definition).

    python benchmarks/softmax_scales.py [--calibration 32] [--test 64]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from results_file import measured_with, record_section
from q8studio.core import quantize as quantize_module
from q8studio.core.data import load_data
from q8studio.core.model import load_model
from q8studio.core.quantize import quantize_model
from q8studio.core.recipe import Recipe
from q8studio.core.session import cpu_session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import save, softmax_net, write_npz  # noqa: E402

TITLE = "Softmax output scales: whole-number reciprocal vs calibrated vs quantize_static"
SOFTMAX = "s1"  # softmax_net's Softmax output


class Images(CalibrationDataReader):
    """One image per calibration batch, for quantize_static."""

    def __init__(self, images: np.ndarray) -> None:
        self.batches = iter({"x": image[None]} for image in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def sqnr_db(values: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10((reference.astype(np.float64) ** 2).sum() / ((values - reference) ** 2).sum()))


def measure(path: Path, test: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """The int8 model's Softmax and network outputs against float's, and the mean sum of a row's probabilities.
    The network output comes from a run with nothing exposed; the Softmax's 8-bit output is read from a run
    that exposes it (the same values on uint8 activations)."""
    model = onnx.load(path)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zero_point = constants[f"{SOFTMAX}_scale"], constants[f"{SOFTMAX}_zero_point"]
    output = cpu_session(model).run(["y"], {"x": test})[0]
    codes = f"{SOFTMAX}_QuantizeLinear_Output"
    probabilities = (cpu_session(model, outputs=[codes]).run([codes], {"x": test})[0].astype(np.float32)
                     - np.float32(zero_point)) * scale
    return {"scale": float(scale), "K": float(np.floor(np.float32(1) / scale)),
            "softmax_sqnr": sqnr_db(probabilities, reference[0]), "output_sqnr": sqnr_db(output, reference[1]),
            "row_sum": float(probabilities.sum(axis=1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=32, help="calibration samples")
    parser.add_argument("--test", type=int, default=64, help="held-out samples")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    calibration = rng.standard_normal((args.calibration, 3, 12, 12), np.float32)
    test = rng.standard_normal((args.test, 3, 12, 12), np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="q8studio-softmax-") as tmp:
        folder = Path(tmp)
        float_model = load_model(save(softmax_net(), folder / "float.onnx"))
        data = load_data(write_npz(folder / "calibration.npz", x=calibration), float_model)
        reference = tuple(cpu_session(float_model.proto, outputs=[SOFTMAX]).run([SOFTMAX, "y"], {"x": test}))
        quantize_model(float_model, data, Recipe(), folder / "whole.onnx")
        with mock.patch.object(quantize_module, "softmax_output_scales", lambda *_: {}):
            quantize_model(float_model, data, Recipe(), folder / "calibrated.onnx")
        quantize_static(str(folder / "float.onnx"), str(folder / "ort.onnx"), Images(calibration),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8)
        for label, name in (("q8studio, S_y = 1/K", "whole"), ("q8studio, calibrated S_y", "calibrated"),
                            ("quantize_static", "ort")):
            figures = measure(folder / f"{name}.onnx", test, reference)
            rows.append((label, figures))
            print(f"{label:26s} S_y = {figures['scale']:.8g} (K = {figures['K']:.0f}): Softmax SQNR "
                  f"{figures['softmax_sqnr']:.2f} dB, output SQNR {figures['output_sqnr']:.2f} dB, a row's "
                  f"probabilities add up to {figures['row_sum']:.4f}")
    lines = [f"## {TITLE}", "", f"Measured {datetime.date.today()} on {measured_with('onnxruntime')}.",
             f"`python benchmarks/softmax_scales.py --calibration {args.calibration} --test {args.test}` "
             "(tests/builders.py softmax_net, uint8 activations, Gaussian-noise images).", "",
             "| quantized by | S_y | K = floor(1/S_y) | Softmax SQNR | output SQNR | row of probabilities adds to |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {label} | {f['scale']:.8g} | {f['K']:.0f} | {f['softmax_sqnr']:.2f} dB | {f['output_sqnr']:.2f} dB "
              f"| {f['row_sum']:.4f} |" for label, f in rows]
    record_section(TITLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
