"""A MobileNet-v1-style classifier built with onnx.helper, for speed measurements only.

Random He-scaled weights and plausible BatchNorm statistics: accuracy is meaningless, but the
operator mix (a strided stem, depthwise-separable blocks with BatchNorm + ReLU6, global
average pooling, a Gemm head) and the tensor shapes are those of the real network, which is
what decides where int8 pays on a CPU.

    python benchmarks/mobilenet_model.py OUT_DIR [--width 0.5] [--size 160]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (output channels at width 1.0, stride) of the depthwise-separable blocks of MobileNet v1.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
          (512, 1), (512, 1), (1024, 2), (1024, 1))
CLASSES = 1000
OPSET = 13


class _Builder:
    """Collects nodes and initializers; each layer helper returns its output tensor name."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = [numpy_helper.from_array(np.float32(0.0), "relu6.min"),
                                             numpy_helper.from_array(np.float32(6.0), "relu6.max")]

    def weight(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv_bn_relu6(self, x: str, scope: str, c_in: int, c_out: int, kernel: int, stride: int, group: int) -> str:
        fan_in = c_in // group * kernel * kernel
        w = self.rng.standard_normal((c_out, c_in // group, kernel, kernel)) * np.sqrt(2.0 / fan_in)
        pad = kernel // 2
        conv, prefix = f"{scope}/conv/Conv", scope.strip("/").replace("/", ".")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.weight(f"{prefix}.conv.weight", w)], [f"{conv}_output_0"], name=conv,
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=group,
        ))
        bn = [self.weight(f"{prefix}.bn.{key}", value) for key, value in (
            ("weight", self.rng.uniform(0.5, 1.5, c_out)), ("bias", self.rng.uniform(-0.2, 0.3, c_out)),
            ("running_mean", self.rng.uniform(-0.1, 0.1, c_out)), ("running_var", self.rng.uniform(0.5, 2.0, c_out)),
        )]
        self.nodes.append(helper.make_node(
            "BatchNormalization", [f"{conv}_output_0", *bn], [f"{scope}/bn/BatchNormalization_output_0"],
            name=f"{scope}/bn/BatchNormalization",
        ))
        out = f"{scope}/relu6/Clip_output_0"
        self.nodes.append(helper.make_node(
            "Clip", [f"{scope}/bn/BatchNormalization_output_0", "relu6.min", "relu6.max"], [out],
            name=f"{scope}/relu6/Clip",
        ))
        return out

    def head(self, x: str, c_in: int) -> str:
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["/gap/GlobalAveragePool_output_0"],
                                           name="/gap/GlobalAveragePool"))
        self.nodes.append(helper.make_node("Flatten", ["/gap/GlobalAveragePool_output_0"], ["/flatten/Flatten_output_0"],
                                           name="/flatten/Flatten"))
        w = self.rng.standard_normal((CLASSES, c_in)) * np.sqrt(1.0 / c_in)
        self.nodes.append(helper.make_node(
            "Gemm", ["/flatten/Flatten_output_0", self.weight("fc.weight", w), self.weight("fc.bias", np.zeros(CLASSES))],
            ["logits"], name="/fc/Gemm", transB=1,
        ))
        return "logits"


def mobilenet(width: float = 0.5, size: int = 160, seed: int = 0) -> onnx.ModelProto:
    """MobileNet v1 at ``width`` (channel multiplier) on ``size`` x ``size`` RGB input, batch axis 'N'."""
    def channels(c: int) -> int:
        return max(8, int(c * width + 4) // 8 * 8)

    b = _Builder(seed)
    c_in = channels(32)
    x = b.conv_bn_relu6("image", "/stem", 3, c_in, 3, 2, 1)
    for index, (c, stride) in enumerate(BLOCKS, start=1):
        x = b.conv_bn_relu6(x, f"/block{index}/depthwise", c_in, c_in, 3, stride, c_in)
        x = b.conv_bn_relu6(x, f"/block{index}/pointwise", c_in, channels(c), 1, 1, 1)
        c_in = channels(c)
    b.head(x, c_in)
    graph = helper.make_graph(
        b.nodes, f"mobilenet_v1_{width}_{size}",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def images(count: int, size: int, seed: int = 1) -> np.ndarray:
    """Normalised-image-like random inputs: smooth enough for activation ranges to look natural."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((count, 3, size // 8, size // 8)).astype(np.float32)
    return np.ascontiguousarray(coarse.repeat(8, axis=2).repeat(8, axis=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = mobilenet(args.width, args.size)
    onnx.save(model, str(args.out / "mobilenet.onnx"))
    np.savez(args.out / "mobilenet_calib.npz", image=images(args.samples, args.size))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {args.out / 'mobilenet.onnx'} ({params:,} parameters) and mobilenet_calib.npz")


if __name__ == "__main__":
    main()
