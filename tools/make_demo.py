"""Build the bundled demo: a small trained digit classifier (ONNX) with calibration and test data.

Development only: needs torch and scikit-learn (``pip install .[demo]``); the app never imports
them. ``python tools/make_demo.py`` rewrites ``q8studio/resources/demo/`` and gives the same bytes on every
run. The model keeps its BatchNormalization nodes on purpose, because q8studio folds them itself and
the demo should show that step. The data are scikit-learn's 8x8 handwritten digits, upscaled to
16x16 and stored as 8-bit images first, so the PNG files and the ``.npz`` rows are the same pixels.
"""

from __future__ import annotations

import json
import sys
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the app's own writer and image loader, so the check matches the app

from q8studio.core.fileio import atomic_path, atomic_write_text  # noqa: E402
from q8studio.core.imagefolder import ImagePreprocessing  # noqa: E402

OUT = REPO / "q8studio" / "resources" / "demo"
SEED = 0
SIZE = 16
SCALE = 1.0 / 255.0
TEST_COUNT = 360
CALIB_COUNT = 500
EPOCHS = 40
BATCH = 32
OPSET = 13
CLASSES = list(range(10))
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the .npz bytes do not change between runs


@dataclass(frozen=True)
class Splits:
    """Row indices into the full data set; calibration rows are a subset of the training rows."""

    train: np.ndarray
    calib: np.ndarray
    test: np.ndarray


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm, optionally + ReLU: the unit that BN folding turns into one Conv."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ResidualBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1, added to the input: per-channel ranges and a joining Add."""

    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = ConvBN(channels, channels, 3, groups=channels)
        self.pointwise = ConvBN(channels, channels, 1, relu=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.pointwise(self.depthwise(x)))


class DigitsNet(nn.Module):
    """A MobileNet-flavoured classifier for 1x16x16 images, small enough to train in seconds."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.stem = ConvBN(1, width, 3)
        self.block1 = ResidualBlock(width)
        self.pool = nn.MaxPool2d(2)
        self.down = ConvBN(width, 2 * width, 3, stride=2)
        self.block2 = ResidualBlock(2 * width)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block1(self.stem(x)))
        x = self.block2(self.down(x))
        return self.fc(self.flatten(self.gap(x)))


def load_pixels() -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 [N,16,16] images (bilinear 2x upscale) and int64 labels."""
    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    large = F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    pixels = np.clip(np.rint(large.squeeze(1).numpy() * 255.0), 0, 255).astype(np.uint8)
    return pixels, digits.target.astype(np.int64)


def split(labels: np.ndarray) -> Splits:
    """A stratified held-out test split; calibration samples come from training data, as a user's would."""
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, test_size=TEST_COUNT, stratify=labels, random_state=SEED)
    calib = np.random.default_rng(SEED).choice(train, CALIB_COUNT, replace=False)
    return Splits(train, calib, test)


def fit_preprocessing(train_pixels: np.ndarray) -> ImagePreprocessing:
    """Mean and std of the training pixels after scaling, rounded to float32 as the app applies them."""
    values = train_pixels.astype(np.float64) * SCALE
    mean, std = float(np.float32(values.mean())), float(np.float32(values.std()))
    return ImagePreprocessing(size=(SIZE, SIZE), layout="NCHW", color="gray", scale=SCALE, mean=(mean,), std=(std,))


def to_input(pixels: np.ndarray, prep: ImagePreprocessing) -> np.ndarray:
    """uint8 [N,H,W] -> float32 [N,1,H,W], with the same float32 operations as the app's image loader."""
    x = pixels.astype(np.float32)[:, None] * np.float32(prep.scale)
    return (x - np.float32(prep.mean[0])) / np.float32(prep.std[0])


def train(images: np.ndarray, labels: np.ndarray) -> DigitsNet:
    """Fixed-length AdamW training with a one-cycle schedule; no early stopping, so the test split stays unseen."""
    torch.manual_seed(SEED)
    model = DigitsNet()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    steps_per_epoch = -(-len(x) // BATCH)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 3e-3, total_steps=EPOCHS * steps_per_epoch)
    order = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(1, EPOCHS + 1):
        total = 0.0
        for batch in torch.randperm(len(x), generator=order).split(BATCH):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        if epoch % 10 == 0:
            print(f"epoch {epoch:3d}  train loss {total / len(x):.4f}")
    return model.eval()


def export_onnx(model: DigitsNet, path: Path) -> None:
    """TorchScript export with BN kept: PRESERVE skips the exporter's Conv+BN fusion, which EVAL applies."""
    with warnings.catch_warnings():
        # The legacy exporter is chosen on purpose: it keeps BN and needs no onnxscript.
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,  # nothing to fold here, and folding in PRESERVE mode only warns
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    # Identity appears when the exporter merges equal-valued initializers (e.g. untrained BN stats).
    if "BatchNormalization" not in ops or "Identity" in ops:
        raise RuntimeError(f"Unexpected exported graph (ops: {sorted(ops)}).")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed member timestamps, so re-runs give identical files."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as stream:
                np.lib.format.write_array(stream, np.ascontiguousarray(array), allow_pickle=False)


def write_pngs(folder: Path, pixels: np.ndarray, labels: np.ndarray) -> dict[Path, int]:
    """The first test image of each class as 8-bit gray PNG in a folder named by its class (so the
    image-folder loader finds labels), named by class and test row; others removed."""
    written: dict[Path, int] = {}
    for label in CLASSES:
        row = int(np.flatnonzero(labels == label)[0])
        path = folder / str(label) / f"digit_{label}_{row:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(pixels[row]).save(tmp, format="PNG")
        written[path] = row
    for stale in set(folder.rglob("*.png")) - set(written):
        stale.unlink()
    return written


def predict(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Logits from onnxruntime, which is what q8studio measures with."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": images})[0]


def check_pngs(pngs: dict[Path, int], test_images: np.ndarray, model_path: Path) -> None:
    """PNG + preprocess.json through the app's loader must give the test.npz rows and the same predictions."""
    prep = ImagePreprocessing.from_json(OUT / "preprocess.json")
    loaded = []
    for path in pngs:
        with Image.open(path) as image:
            loaded.append(prep.apply(image))
    from_png = np.stack(loaded)
    from_npz = test_images[list(pngs.values())]
    if not np.array_equal(from_png, from_npz):
        raise RuntimeError(f"PNG inputs differ from test.npz rows (max {np.abs(from_png - from_npz).max():.3g}).")
    png_pred = predict(model_path, from_png).argmax(1)
    if not np.array_equal(png_pred, predict(model_path, from_npz).argmax(1)):
        raise RuntimeError("Predictions on the PNG files differ from those on the test.npz rows.")
    print("PNG check: inputs identical to test.npz rows; predictions", png_pred.tolist())


def write_data(pixels: np.ndarray, labels: np.ndarray, splits: Splits, prep: ImagePreprocessing) -> dict[Path, int]:
    """calib.npz, test.npz, preprocess.json and the example PNGs."""
    write_npz(OUT / "calib.npz", {"image": to_input(pixels[splits.calib], prep), "labels": labels[splits.calib]})
    write_npz(OUT / "test.npz", {"image": to_input(pixels[splits.test], prep), "labels": labels[splits.test]})
    atomic_write_text(OUT / "preprocess.json", json.dumps(prep.to_dict(), indent=2) + "\n")
    return write_pngs(OUT / "images", pixels[splits.test], labels[splits.test])


def build_model(images: np.ndarray, labels: np.ndarray, path: Path) -> DigitsNet:
    """Train, export and check the float model; the file is replaced only if the export checks out."""
    model = train(images, labels)
    print(f"parameters: {sum(p.numel() for p in model.parameters())}")
    with atomic_path(path) as tmp:
        export_onnx(model, tmp)
    return model


def measure(model_path: Path, test_images: np.ndarray, test_labels: np.ndarray, model: DigitsNet) -> float:
    """Float top-1 measured with onnxruntime on test.npz, after checking the export against PyTorch."""
    logits = predict(model_path, test_images)
    with torch.no_grad():
        reference = model(torch.from_numpy(test_images)).numpy()
    difference = float(np.abs(logits - reference).max())
    if difference > 1e-3:
        raise RuntimeError(f"onnxruntime and PyTorch logits differ by up to {difference:.3g}.")
    return float((logits.argmax(1) == test_labels).mean())


def summarise(model_path: Path, top1: float, test_count: int) -> None:
    """The files written, the graph's nodes and op counts, and the float accuracy, last so it is seen."""
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:9d}  {path.relative_to(REPO)}")
    graph = onnx.load(str(model_path)).graph
    print("nodes:", [node.name for node in graph.node])
    print("ONNX ops:", dict(sorted(Counter(node.op_type for node in graph.node).items())))
    print(f"float top-1 on {test_count} test images: {top1:.4f}")


def main() -> None:
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    pixels, labels = load_pixels()
    splits = split(labels)
    prep = fit_preprocessing(pixels[splits.train])
    model_path = OUT / "digits_cnn.onnx"
    model = build_model(to_input(pixels[splits.train], prep), labels[splits.train], model_path)
    pngs = write_data(pixels, labels, splits, prep)
    with np.load(OUT / "test.npz") as test:
        test_images, test_labels = test["image"], test["labels"]
    top1 = measure(model_path, test_images, test_labels, model)
    check_pngs(pngs, test_images, model_path)
    meta = {
        "model": model_path.name, "calib": "calib.npz", "test": "test.npz", "images": "images",
        "preprocess": "preprocess.json", "float_top1": round(top1, 4), "classes": CLASSES, "input": "image",
    }
    atomic_write_text(OUT / "demo.json", json.dumps(meta, indent=2) + "\n")
    summarise(model_path, top1, len(test_labels))


if __name__ == "__main__":
    main()
