"""Calibration and evaluation data: ``.npz``, ``.npy`` or a folder of images, checked against the model.

Arrays are streamed from disk batch by batch (never loaded whole), so calibrating on 500
samples needs no more memory than on 50. Values are checked for NaN/Inf as they stream, and when
data are chosen (:meth:`Dataset.check_values`), so that a run is not the first to find them.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Iterator, Protocol

import numpy as np

from .astguard import parsing_alone
from .errors import Q8Error
from .imagefolder import REPORT_EVERY, ImageFolderSource, ImageOptions, ImagePreprocessing
from .model import LoadedModel, TensorInfo
from .progress import NO_PROGRESS, Progress

LABELS_KEY = "labels"
VALUE_CHECK_BYTES = 128 * 2**20
"""How much of an array file :meth:`Dataset.check_values` scans when data are chosen: on a 2-core machine
~0.05 s from the page cache, ~0.5 s from a compressed .npz. A run checks the rest as it reads it."""
CHECK_BATCH_BYTES = 16 * 2**20  # rows read at a time by that scan: few reads, bounded memory
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error)  # a damaged file, found only on reading it


class RowSource(Protocol):
    """A 2-D-or-more array read sequentially along its leading (sample) axis."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def iter_rows(self, batch_size: int, limit: int) -> Iterator[np.ndarray]: ...


@dataclass
class _NpyStream:
    """Rows of one ``.npy`` array (a file, or a member of an ``.npz``), read sequentially."""

    opener: Callable[[], ContextManager[BinaryIO]]  # a fresh stream at the start of the .npy bytes
    shape: tuple[int, ...]
    dtype: np.dtype

    def iter_rows(self, batch_size: int, limit: int) -> Iterator[np.ndarray]:
        row_items = int(np.prod(self.shape[1:], dtype=np.int64))
        with self.opener() as stream:
            _read_npy_header(stream)
            done = 0
            while done < limit:
                count = min(batch_size, limit - done)
                buffer = _read_exact(stream, count * row_items * self.dtype.itemsize)
                yield np.frombuffer(buffer, dtype=self.dtype).reshape((count, *self.shape[1:]))
                done += count


@dataclass
class Dataset:
    """Model inputs keyed by input name (leading axis = samples) and optional integer labels."""

    sources: dict[str, RowSource]
    labels: np.ndarray | None
    count: int
    source: str
    input_dtypes: dict[str, np.dtype] = field(default_factory=dict)
    fingerprint: tuple = ()
    """What the samples' values depend on (files, sizes, modification times, image preprocessing):
    equal fingerprints and counts mean equal samples, so a new run may reuse earlier statistics.
    Empty for data built in memory, which is never taken for the same."""
    path: Path | None = None
    """The file or folder the samples are read from (None for data built in memory): no output may replace it."""

    @property
    def name(self) -> str:
        """The file or folder name, which says which data in a line; ``source`` has the whole path."""
        return self.path.name if self.path is not None else self.source

    def batches(self, batch_size: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Feeds for the model, ``batch_size`` samples at a time, cast to the model's types and checked."""
        iterators = {name: src.iter_rows(batch_size, self.count) for name, src in self.sources.items()}
        where = self.name  # which data, when a run reads two
        start = 0
        while start < self.count:
            feed = {}
            for name, rows in iterators.items():
                try:
                    batch = next(rows)
                except READ_ERRORS as exc:
                    raise Q8Error(f"{where}: input '{name}' cannot be read ({exc}).") from None
                _check_finite(batch, where, name, start)
                dtype = self.input_dtypes.get(name, batch.dtype)
                with np.errstate(over="ignore"):  # said below, in one line, rather than as numpy's warning
                    feed[name] = np.ascontiguousarray(batch, dtype=dtype)
                if feed[name].dtype != batch.dtype:  # only a cast can overflow
                    _check_finite(feed[name], where, name, start,
                                  f"values too large for the model's {np.dtype(dtype).name}")
            start += len(next(iter(feed.values())))
            yield feed

    @property
    def image_preprocessing(self) -> ImagePreprocessing | None:
        """How an image folder's files became samples; part of what reproduces a run. None for arrays."""
        folder = _image_folder_source(self.sources)
        return folder.preprocessing if folder else None

    def check_values(self, max_bytes: int | None = None, progress: Progress = NO_PROGRESS) -> None:
        """Refuse now what a run would refuse only once it reads the samples, with the run's reasons: NaN/Inf,
        values too large for the model's type, damaged arrays, image files that are no image or are cut short.

        Arrays are scanned up to ``max_bytes`` (default :data:`VALUE_CHECK_BYTES`) so that choosing huge
        data does not stall; a run checks the rest as it reads. Of an image folder the first files' headers
        and ends are read (:meth:`.ImageFolderSource.check_files`): decoding is ~60 times slower, and the
        preprocessing settings are checked to keep every decodable image finite.
        """
        folder = _image_folder_source(self.sources)
        if folder is not None:
            folder.check_files(self.count, progress)
            return
        row_bytes = max(1, sum(int(np.prod(s.shape[1:], dtype=np.int64)) * s.dtype.itemsize
                               for s in self.sources.values()))
        budget = VALUE_CHECK_BYTES if max_bytes is None else max_bytes
        scanned = self.limited(max(1, budget // row_bytes))
        done = 0
        for batch in scanned.batches(max(1, CHECK_BATCH_BYTES // row_bytes)):
            progress.report("Checking values", done, scanned.count)
            done += len(next(iter(batch.values())))

    def first_sample(self) -> dict[str, np.ndarray]:
        return next(self.batches(1))

    def limited(self, samples: int | None) -> "Dataset":
        """The first ``samples`` samples (all of them for ``None``)."""
        if samples is None or samples >= self.count:
            return self
        if samples < 1:
            raise Q8Error(f"The sample count must be at least 1 (got {samples}).")
        labels = self.labels[:samples] if self.labels is not None else None
        return Dataset(self.sources, labels, samples, f"{self.source} ({samples} samples)", self.input_dtypes,
                       self.fingerprint, self.path)


def load_data(
    path: str | os.PathLike[str],
    model: LoadedModel,
    *,
    samples: int | None = None,
    preprocessing: ImagePreprocessing | ImageOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> Dataset:
    """Open a data source and check it fits the model's inputs; nothing is read in bulk yet.

    An image folder is read with ``preprocessing`` when complete; options (or ``None``) are
    completed from what the model's input implies. Listing and dating the files of a large folder takes
    seconds (half a million: 2.5 s), which ``progress`` reports and may cancel.
    """
    path = Path(path)
    if not path.exists():
        raise Q8Error(f"No such data file or folder: {path}")
    if path.is_dir():
        sources, labels = _image_folder(path, model, preprocessing, progress)
    elif path.suffix.lower() == ".npz":
        sources, labels = _npz(path, {t.name for t in model.input_specs()})
    elif path.suffix.lower() == ".npy":
        sources, labels = _npy(path, model), None
    else:
        raise Q8Error(f"{path.name}: data must be a .npz file, a .npy file or a folder of images.")
    count = _check_against_model(sources, labels, model, path.name)
    dtypes = {t.name: np.dtype(t.dtype) for t in model.input_specs() if t.dtype}
    fingerprint = _fingerprint(path, sources, progress)
    return Dataset(sources, labels, count, str(path), dtypes, fingerprint, path).limited(samples)


def _fingerprint(path: Path, sources: dict[str, RowSource], progress: Progress) -> tuple:
    """The files behind the data as (path, size, modification and change times), and an image folder's
    preprocessing. The change time catches a file rewritten with its old size and modification time
    (``cp -p``): no user call can set it back.

    An image folder's stamps are kept as a digest: a tuple per file held 0.2 GB for a million images.
    """
    folder = _image_folder_source(sources)
    if folder is None:
        return (_stamp(path.resolve()),)
    digest = hashlib.blake2b(digest_size=32)
    for index, file in enumerate(folder.files):  # already resolved
        if index % REPORT_EVERY == 0:
            progress.report("Reading file dates", index, len(folder.files))
        digest.update(repr(_stamp(file)).encode("utf-8", "surrogateescape"))
    return folder.preprocessing, len(folder.files), digest.hexdigest()


def _image_folder_source(sources: dict[str, RowSource]) -> ImageFolderSource | None:
    return next((source for source in sources.values() if isinstance(source, ImageFolderSource)), None)


def _stamp(file: Path | str) -> tuple[str, int, int, int]:
    status = os.stat(file)
    return str(file), status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _npz(path: Path, input_names: set[str]) -> tuple[dict[str, RowSource], np.ndarray | None]:
    """The arrays of ``path`` by input name, and its labels: the ``labels`` array, unless the model
    has an input of that name, which it then feeds."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise Q8Error(f"{path.name} is not a valid .npz file.") from None
    sources: dict[str, RowSource] = {}
    labels = None
    with archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            key = member[: -len(".npy")]
            try:
                with archive.open(member) as stream:
                    shape, dtype = _read_npy_header(stream)
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                raise Q8Error(f"{path.name}: array '{key}' cannot be read ({exc}).") from None
            if key == LABELS_KEY and key not in input_names:
                with archive.open(member) as stream, parsing_alone():
                    labels = np.lib.format.read_array(stream)
                continue
            sources[key] = _NpyStream(partial(_npz_member, path, member), shape, dtype)
    if not sources:
        raise Q8Error(f"{path.name} contains no input arrays.")
    return sources, labels


def _npy(path: Path, model: LoadedModel) -> dict[str, RowSource]:
    inputs = model.input_specs()
    if len(inputs) != 1:
        names = ", ".join(t.name for t in inputs)
        raise Q8Error(f"A .npy file can only feed a single-input model; this one has inputs {names}: use .npz.")
    try:
        with path.open("rb") as stream:
            shape, dtype = _read_npy_header(stream)
    except (ValueError, OSError) as exc:
        raise Q8Error(f"{path.name} is not a valid .npy file ({exc}).") from None
    return {inputs[0].name: _NpyStream(partial(path.open, "rb"), shape, dtype)}


def _image_folder(
    path: Path, model: LoadedModel, preprocessing: ImagePreprocessing | ImageOptions | None, progress: Progress
) -> tuple[dict[str, RowSource], np.ndarray | None]:
    inputs = model.input_specs()
    if len(inputs) != 1:
        raise Q8Error("An image folder can only feed a single-input model.")
    if not isinstance(preprocessing, ImagePreprocessing):
        preprocessing = (preprocessing or ImageOptions()).for_input(inputs[0])
    source = ImageFolderSource(path, preprocessing, progress)
    return {inputs[0].name: source}, source.labels


def _check_against_model(
    sources: dict[str, RowSource], labels: np.ndarray | None, model: LoadedModel, label: str
) -> int:
    expected = {t.name: t for t in model.input_specs()}
    if set(sources) != set(expected):
        raise Q8Error(
            f"{label} has arrays {sorted(sources)} but the model expects inputs {sorted(expected)}."
        )
    counts = {name: src.shape[0] if src.shape else 0 for name, src in sources.items()}
    if len(set(counts.values())) != 1:
        raise Q8Error(f"{label}: the input arrays have different sample counts {counts}.")
    count = next(iter(counts.values()))
    if count == 0:
        raise Q8Error(f"{label} contains no samples.")
    for name, src in sources.items():
        _check_shape_and_type(name, src, expected[name], label)
    if labels is not None:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise Q8Error(f"{label}: 'labels' must be a 1-D array of integer class ids.")
        if len(labels) != count:
            raise Q8Error(f"{label}: {len(labels)} labels for {count} samples.")
    return count


def _check_shape_and_type(name: str, src: RowSource, spec: TensorInfo, label: str) -> None:
    if spec.shape is not None:
        if len(src.shape) != len(spec.shape):
            raise Q8Error(
                f"{label}: '{name}' has shape {list(src.shape)} (rank {len(src.shape)}) but the model "
                f"expects rank {len(spec.shape)} {spec.shape_text()} (leading axis = samples)."
            )
        for axis, (have, want) in enumerate(zip(src.shape[1:], spec.shape[1:]), start=1):
            if isinstance(want, int) and want > 0 and have != want:
                raise Q8Error(
                    f"{label}: '{name}' has size {have} on axis {axis} but the model expects "
                    f"{want} ({spec.shape_text()})."
                )
    if spec.dtype is not None:
        want_dtype = np.dtype(spec.dtype)
        real = np.issubdtype(src.dtype, np.integer) or np.issubdtype(src.dtype, np.floating)
        if np.issubdtype(want_dtype, np.floating) and not real:  # bool, text, complex...
            raise Q8Error(f"{label}: '{name}' holds {src.dtype} values but the model expects {want_dtype}.")
        if np.issubdtype(want_dtype, np.integer) and not np.issubdtype(src.dtype, np.integer):
            raise Q8Error(f"{label}: '{name}' holds {src.dtype} values but the model expects {want_dtype}.")


def _check_finite(batch: np.ndarray, where: str, name: str, start: int, problem: str = "NaN or Inf values") -> None:
    """Refuse a batch with a non-finite value, naming the data, the input and the first sample that has one."""
    if np.issubdtype(batch.dtype, np.floating) and not np.isfinite(batch).all():
        bad = int(np.argmax(~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)))
        raise Q8Error(f"{where}: input '{name}' has {problem} (first in sample {start + bad}).")


@contextmanager
def _npz_member(path: Path, member: str) -> Iterator[BinaryIO]:
    with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
        yield stream


def _read_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(stream)
    with parsing_alone():  # numpy parses the header with ast.literal_eval
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    if fortran and len(shape) > 1:
        raise ValueError("Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
    if dtype.hasobject:
        raise ValueError("object arrays are not supported")
    return tuple(shape), dtype


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise Q8Error("The data file ended early (truncated array).")
    return data
