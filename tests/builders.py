"""Small real ONNX models for tests, built with onnx.helper, and the onnx package's test architectures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from q8studio.core.model import LoadedModel
from q8studio.core.session import INT8_KERNELS, BatchRunner, cpu_session, session_options
from q8studio.core.weights import QuantParams

LIGHT_MODELS = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def small_cnn(opset: int = 13, seed: int = 0, channels: int = 8, size: int = 16) -> onnx.ModelProto:
    """Conv+BN+ReLU, depthwise conv, 1x1 conv, residual Add, pooling and Gemm on a [N,3,size,size] input."""
    rng = np.random.default_rng(seed)
    c = channels

    def conv_w(out_c: int, in_c: int, k: int) -> np.ndarray:
        return (rng.standard_normal((out_c, in_c, k, k)) * np.sqrt(2.0 / (in_c * k * k))).astype(np.float32)

    inits = [
        _init("stem.w", conv_w(c, 3, 3)), _init("stem.b", np.zeros(c, np.float32)),
        _init("bn.scale", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        _init("bn.bias", rng.uniform(-0.2, 0.2, c).astype(np.float32)),
        _init("bn.mean", rng.uniform(-0.1, 0.1, c).astype(np.float32)),
        _init("bn.var", rng.uniform(0.5, 2.0, c).astype(np.float32)),
        _init("dw.w", conv_w(c, 1, 3)), _init("dw.b", rng.uniform(-0.1, 0.1, c).astype(np.float32)),
        _init("pw.w", conv_w(c, c, 1)), _init("pw.b", rng.uniform(-0.1, 0.1, c).astype(np.float32)),
        _init("fc.w", (rng.standard_normal((10, c)) * 0.3).astype(np.float32)),
        _init("fc.b", np.zeros(10, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "stem.w", "stem.b"], ["stem"], name="/stem/Conv", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["stem", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["stem_bn"], name="/stem/bn/BatchNormalization"
        ),
        helper.make_node("Relu", ["stem_bn"], ["stem_relu"], name="/stem/Relu"),
        helper.make_node("Conv", ["stem_relu", "dw.w", "dw.b"], ["dw"], name="/block/dw/Conv", pads=[1, 1, 1, 1], group=c),
        helper.make_node("Relu", ["dw"], ["dw_relu"], name="/block/dw/Relu"),
        helper.make_node("Conv", ["dw_relu", "pw.w", "pw.b"], ["pw"], name="/block/pw/Conv"),
        helper.make_node("Add", ["pw", "stem_relu"], ["res"], name="/block/Add"),
        helper.make_node("Relu", ["res"], ["res_relu"], name="/block/Relu"),
        helper.make_node("MaxPool", ["res_relu"], ["pool"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["pool"], ["gap"], name="/head/GlobalAveragePool"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="/head/Flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="/head/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def transformer_block(seed: int = 0, width: int = 256, tokens: int = 8) -> onnx.ModelProto:
    """Embedding Gather, positional Add, LayerNorm, a residual MLP of MatMuls and a Gemm head on
    [N, tokens] token ids (opset 17): the large float constants of a transformer, beyond Conv weights."""
    rng = np.random.default_rng(seed)

    def dense(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32)

    inits = [
        _init("embedding", dense(100, width)), _init("position", dense(tokens, width)),
        _init("ln.scale", rng.uniform(0.5, 1.5, width).astype(np.float32)),
        _init("ln.bias", rng.uniform(-0.1, 0.1, width).astype(np.float32)),
        _init("up.w", dense(width, width)), _init("up.b", rng.uniform(-0.1, 0.1, width).astype(np.float32)),
        _init("down.w", dense(width, width)), _init("head.w", dense(10, width)),
        _init("head.b", np.zeros(10, np.float32)),
    ]
    nodes = [
        helper.make_node("Gather", ["embedding", "ids"], ["embedded"], name="/embed/Gather"),
        helper.make_node("Add", ["embedded", "position"], ["positioned"], name="/embed/Add"),
        helper.make_node("LayerNormalization", ["positioned", "ln.scale", "ln.bias"], ["normed"], name="/ln/LayerNorm", axis=-1),
        helper.make_node("MatMul", ["normed", "up.w"], ["up"], name="/mlp/up/MatMul"),
        helper.make_node("Add", ["up", "up.b"], ["up_biased"], name="/mlp/up/Add"),
        helper.make_node("Relu", ["up_biased"], ["hidden"], name="/mlp/Relu"),
        helper.make_node("MatMul", ["hidden", "down.w"], ["down"], name="/mlp/down/MatMul"),
        helper.make_node("Add", ["down", "positioned"], ["residual"], name="/mlp/Add"),
        helper.make_node("ReduceMean", ["residual"], ["pooled"], name="/pool/ReduceMean", axes=[1], keepdims=0),
        helper.make_node("Gemm", ["pooled", "head.w", "head.b"], ["logits"], name="/head/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "transformer_block",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", tokens])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp() -> onnx.ModelProto:
    """MatMul + Add + Relu, Gemm + Relu, Gemm: pre-processing fuses the first MatMul and Add into a Gemm."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(array.astype(np.float32), name) for name, array in (
        ("w1", rng.standard_normal((20, 64)) * 0.3), ("b1", np.zeros(64)), ("w2", rng.standard_normal((64, 32)) * 0.2),
        ("b2", np.full(32, 0.1)), ("w3", rng.standard_normal((5, 32)) * 0.2), ("b3", np.zeros(5)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
             helper.make_node("Add", ["h1", "b1"], ["h1b"], name="add1"),
             helper.make_node("Relu", ["h1b"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="gemm2"),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["y"], name="gemm3", transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def inverse_model() -> onnx.ModelProto:
    """MatMul then com.microsoft.Inverse: onnxruntime's symbolic shape inference fails on it (and
    leaves a scratch file in the working directory), so pre-processing takes its fallback path."""
    w = _init("w", np.eye(4, dtype=np.float32) * 2 + 0.1)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
            helper.make_node("Inverse", ["m"], ["y"], name="inverse", domain="com.microsoft"),
        ],
        "inverse", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4])], [w],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model


def inverse_inputs(count: int = 8) -> np.ndarray:
    """Well-conditioned [count, 4, 4] inputs for :func:`inverse_model`."""
    noise = np.random.default_rng(0).random((count, 4, 4), dtype=np.float32) * 0.1
    return np.eye(4, dtype=np.float32)[None] + noise


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """One of the onnx package's architecture-only models, with its ConstantOfShape weights made real.

    Those files replace every weight by a ConstantOfShape node to stay small; random He-scaled
    weights (and unit BatchNorm statistics) give activations with realistic spreads.
    """
    model = onnx.load(str(LIGHT_MODELS / f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep, new_inits = [], []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape":
            keep.append(node)
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        new_inits.append(_init(node.output[0], _random_weight(node.output[0], shape, rng)))
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {i for n in keep for i in n.input}
    kept_inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_inits + new_inits)
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits and i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs)
    model.ir_version = max(model.ir_version, 4)  # IR 3 required initializers to be listed as inputs
    onnx.checker.check_model(model)
    return model


def _random_weight(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    lowered = name.lower()
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if "var" in lowered or lowered.endswith("_s_0") or "scale" in lowered or "riv" in lowered:
        return rng.uniform(0.8, 1.2, shape).astype(np.float32)
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def with_argmax(model: onnx.ModelProto, keepdims: int = 0) -> onnx.ModelProto:
    """``model`` with its scores [N, classes] replaced by their ArgMax: int64 class ids [N] ([N, 1] with keepdims)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    scores = model.graph.output[0].name
    model.graph.node.append(helper.make_node("ArgMax", [scores], ["class_id"], name="argmax", axis=1, keepdims=keepdims))
    del model.graph.output[:]
    shape = ["N", 1] if keepdims else ["N"]
    model.graph.output.append(helper.make_tensor_value_info("class_id", TensorProto.INT64, shape))
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def image_copies(folder: Path, count: int, classes: int = 2) -> Path:
    """``count`` copies of one of the demo's images in ``classes`` class folders: a folder large enough for
    several progress reports, built in a fraction of a second."""
    from q8studio.core.demo import demo_assets

    content = sorted(demo_assets().images.rglob("*.png"))[0].read_bytes()
    for index in range(count):
        path = folder / str(index % classes) / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return folder


def qdq_pooling(op_type: str, attributes: dict, shape: list, scales: tuple[float, float], zeros: tuple[int, int],
                qtype: int = TensorProto.UINT8, requantized: bool = True, operands: dict | None = None
                ) -> onnx.ModelProto:
    """float x -> Quantize/Dequantize -> a one-input layer named "pool" (a MaxPool, an AveragePool, a Transpose)
    -> Quantize/Dequantize -> y, as a quantizer writes it; ``operands`` are the layer's stored inputs after x
    (a Reshape's shape, a Gather's indices), in order, by name."""
    npt = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    operands = operands or {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "s_x", "z_x"], ["x_dq"]),
             helper.make_node(op_type, ["x_dq", *operands], ["pooled" if requantized else "y"], name="pool",
                              **attributes)]
    if requantized:
        nodes += [helper.make_node("QuantizeLinear", ["pooled", "s_y", "z_y"], ["y_q"]),
                  helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y"])]
    initializers = [numpy_helper.from_array(np.array(s, np.float32), f"s_{n}") for n, s in zip("xy", scales)]
    initializers += [numpy_helper.from_array(np.array(z, npt), f"z_{n}") for n, z in zip("xy", zeros)]
    initializers += [numpy_helper.from_array(np.asarray(value), name) for name, value in operands.items()]
    graph = helper.make_graph(nodes, "qdq_pooling", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(shape))],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


KERNEL_WAYS = {"uint8": (TensorProto.UINT8, False), "int8": (TensorProto.INT8, False),
               "int8 kernels": (TensorProto.INT8, True)}
"""How ONNX Runtime may run an 8-bit layer: on uint8, on int8 as this CPU runs it (x86: converted to uint8), on int8
with int8 kernels (ARM; x86 with the session option INT8_KERNELS): (qtype, int8_kernels) for :func:`run_exposed`."""


def run_exposed(model: LoadedModel, names: list[str], feed: dict[str, np.ndarray], *, int8_kernels: bool = False
                ) -> list[np.ndarray]:
    """``model``'s tensors ``names`` on ``feed``, in the model's types, as ONNX Runtime runs it on this CPU, or with
    ``int8_kernels`` as it runs it where its kernels take int8 codes."""
    options = session_options()
    if int8_kernels:
        options.add_session_config_entry(INT8_KERNELS, "1")
    return BatchRunner(model, cpu_session(model.proto, outputs=names, options=options)).run(names, feed)


def quant_params(name: str, scale: float, zero: int, qtype: int) -> QuantParams:
    """One tensor's quantization, as the explain references take it."""
    dtype = np.uint8 if qtype == TensorProto.UINT8 else np.int8
    return QuantParams(name, np.array(scale, np.float32), np.array(zero, dtype), np.dtype(dtype).name)


def average_pool_net(attributes: dict) -> onnx.ModelProto:
    """Conv -> Relu -> AveragePool (named "/pool/AveragePool", with ``attributes``) -> Conv on [N, 3, 12, 12]."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="/relu/Relu"),
             helper.make_node("AveragePool", ["r1"], ["p"], name="/pool/AveragePool", **attributes),
             helper.make_node("Conv", ["p", "w2"], ["y"], name="/conv2/Conv")]
    graph = helper.make_graph(nodes, "avgnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, None, None])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def activation_net(alpha: float = 0.1) -> onnx.ModelProto:
    """Conv -> LeakyRelu -> Conv -> x·Sigmoid(x) (a swish: Sigmoid, Mul) -> Concat with the LeakyRelu's output
    -> Conv on [N, 3, 12, 12]: the int8 kernels ONNX Runtime runs besides convolutions and pooling."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (8, 8, 1, 1)), ("w3", (4, 16, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["l1"], name="/act/LeakyRelu", alpha=alpha),
             helper.make_node("Conv", ["l1", "w2"], ["c2"], name="/conv2/Conv"),
             helper.make_node("Sigmoid", ["c2"], ["s2"], name="/gate/Sigmoid"),
             helper.make_node("Mul", ["c2", "s2"], ["m2"], name="/swish/Mul"),
             helper.make_node("Concat", ["m2", "l1"], ["cat"], name="/cat/Concat", axis=1),
             helper.make_node("Conv", ["cat", "w3"], ["y"], name="/conv3/Conv")]
    graph = helper.make_graph(nodes, "actnet",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, None, None])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def activation_chain() -> onnx.ModelProto:
    """Conv -> LeakyRelu -> Conv -> Sigmoid -> Conv on [N, 3, 12, 12], node names as in :func:`activation_net`: each
    tensor is read by one layer, so that with int8 activations ONNX Runtime on x86 converts every Quantize/Dequantize
    pair to uint8 and fuses every layer (activation_net's fan-outs keep theirs int8, run in float)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (8, 8, 1, 1)), ("w3", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["l1"], name="/act/LeakyRelu", alpha=0.1),
             helper.make_node("Conv", ["l1", "w2"], ["c2"], name="/conv2/Conv"),
             helper.make_node("Sigmoid", ["c2"], ["s2"], name="/gate/Sigmoid"),
             helper.make_node("Conv", ["s2", "w3"], ["y"], name="/conv3/Conv")]
    graph = helper.make_graph(nodes, "actchain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, None, None])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def softmax_net(axis: int = 1, opset: int = 13) -> onnx.ModelProto:
    """Conv -> Softmax (named "/attn/Softmax", along ``axis``) -> Conv on [N, 3, 12, 12]: a softmax over 8 channels
    at every pixel with axis 1 (before opset 13, over every value from the axis on)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (4, 8, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Softmax", ["c1"], ["s1"], name="/attn/Softmax", axis=axis),
             helper.make_node("Conv", ["s1", "w2"], ["y"], name="/conv2/Conv")]
    graph = helper.make_graph(nodes, "softmaxnet",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, None, None])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def mover_net() -> onnx.ModelProto:
    """Conv -> Transpose -> Reshape -> Slice -> Gather -> Unsqueeze -> Squeeze -> Flatten -> MatMul on [N, 3, 8, 8]:
    every layer between the Conv and the MatMul moves values without computing any."""
    rng = np.random.default_rng(0)
    inits = [_init("w1", (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)),
             _init("shape", np.array([0, 64, 8], np.int64)), _init("starts", np.array([0], np.int64)),
             _init("ends", np.array([40], np.int64)), _init("axes", np.array([1], np.int64)),
             _init("indices", np.array([0, 5, 39, 10, 5], np.int64)), _init("one", np.array([1], np.int64)),
             _init("w2", (rng.standard_normal((40, 10)) * 0.3).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="/conv1/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c1"], ["t"], name="/t/Transpose", perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["r"], name="/r/Reshape"),
             helper.make_node("Slice", ["r", "starts", "ends", "axes"], ["s"], name="/s/Slice"),
             helper.make_node("Gather", ["s", "indices"], ["g"], name="/g/Gather", axis=1),
             helper.make_node("Unsqueeze", ["g", "one"], ["u"], name="/u/Unsqueeze"),
             helper.make_node("Squeeze", ["u", "one"], ["q"], name="/q/Squeeze"),
             helper.make_node("Flatten", ["q"], ["f"], name="/f/Flatten"),
             helper.make_node("MatMul", ["f", "w2"], ["y"], name="/fc/MatMul")]
    graph = helper.make_graph(nodes, "movers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def embedding_net() -> onnx.ModelProto:
    """Token ids [N, 5] -> Gather from a stored [16, 8] table ("/emb/Gather") -> MatMul: an embedding lookup, whose
    table the quantizer stores as 8-bit codes."""
    rng = np.random.default_rng(0)
    inits = [_init("table", rng.standard_normal((16, 8)).astype(np.float32)),
             _init("w", (rng.standard_normal((8, 4)) * 0.3).astype(np.float32))]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="/emb/Gather"),
             helper.make_node("MatMul", ["e", "w"], ["y"], name="/fc/MatMul")]
    graph = helper.make_graph(nodes, "embedding", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
