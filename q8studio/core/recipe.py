"""Quantization settings as one typed value, saved and loaded as JSON to reproduce a run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .clipping import METHODS, needs_histogram
from .errors import Q8Error
from .fileio import atomic_write_text, read_json
from .stats import HIST_VALUES_PER_SAMPLE

RECIPE_VERSION = 1
REPORT_VERSION = 1
GRANULARITIES = ("per-tensor", "per-channel")
ACTIVATION_TYPES = ("uint8", "int8")
METHOD_SETTINGS: dict[str, tuple[str, ...]] = {
    "percentile": ("percentile",),
    "ema_momentum": ("ema",),
    "histogram_values": tuple(method for method in METHODS if needs_histogram(method)),
}
"""Settings that only some clipping methods read, and those methods: minmax and ema bin no histogram."""


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the int8 model, validated on construction."""

    method: str = "minmax"
    percentile: float = 99.99
    ema_momentum: float = 0.9
    granularity: str = "per-tensor"
    activation_type: str = "uint8"
    symmetric_activations: bool = False
    samples: int | None = None
    exclude: tuple[str, ...] = field(default_factory=tuple)
    histogram_values: int = HIST_VALUES_PER_SAMPLE
    """Values of each sample of each activation binned into its histogram (0: every value)."""

    def __post_init__(self) -> None:
        _require_type("percentile", self.percentile, (int, float), "a number")
        _require_type("ema_momentum", self.ema_momentum, (int, float), "a number")
        _require_type("symmetric_activations", self.symmetric_activations, bool, "true or false")
        _require_type("histogram_values", self.histogram_values, int, "a whole number")
        if self.samples is not None:
            _require_type("samples", self.samples, int, "a whole number")
        if not isinstance(self.exclude, (list, tuple)) or not all(isinstance(name, str) for name in self.exclude):
            raise Q8Error(f"The recipe's exclude must be a list of node names (got {self.exclude!r}).")
        if self.method not in METHODS:
            raise Q8Error(f"Unknown clipping method '{self.method}'; choose one of {', '.join(METHODS)}.")
        if not 50.0 < self.percentile <= 100.0:  # the range runs from the (100 - P)-th to the P-th percentile
            raise Q8Error(f"The percentile must be above 50 and at most 100 (got {self.percentile}): the range runs "
                          "from the (100 - P)-th to the P-th percentile, so 99.99 clips the rarest 0.01% at each end.")
        if not 0.0 < self.ema_momentum < 1.0:
            raise Q8Error(f"The EMA momentum must be in (0, 1) (got {self.ema_momentum}).")
        if self.granularity not in GRANULARITIES:
            raise Q8Error(f"Granularity must be one of {', '.join(GRANULARITIES)} (got '{self.granularity}').")
        if self.activation_type not in ACTIVATION_TYPES:
            raise Q8Error(f"Activation type must be uint8 or int8 (got '{self.activation_type}').")
        if self.samples is not None and self.samples < 1:
            raise Q8Error(f"The sample count must be at least 1 (got {self.samples}).")
        if self.histogram_values < 0:
            raise Q8Error(f"The histogram values per sample must be 0 (all) or more (got {self.histogram_values}).")
        object.__setattr__(self, "exclude", tuple(self.exclude))

    @property
    def per_channel(self) -> bool:
        return self.granularity == "per-channel"

    def unused_settings(self) -> dict[str, object]:
        """Settings its method does not read, where they differ from the defaults (name -> value).

        Every recipe holds every setting: a saved one keeps the percentile the window showed whatever
        the method, and a report of a minmax run its default percentile. Only a value someone changed
        can have been meant to act.
        """
        default = Recipe()
        return {name: getattr(self, name) for name, methods in METHOD_SETTINGS.items()
                if self.method not in methods and getattr(self, name) != getattr(default, name)}

    def with_changes(self, **changes: object) -> "Recipe":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["exclude"] = list(self.exclude)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise Q8Error(f"Unknown recipe settings: {', '.join(unknown)}.")
        values = dict(data)
        if isinstance(values.get("exclude"), list):
            values["exclude"] = tuple(values["exclude"])
        try:
            return cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise Q8Error(f"Invalid recipe: {exc}") from None

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps({"q8studio_recipe": RECIPE_VERSION, **self.to_dict()}, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        data = read_json(Path(path), "a recipe or report")
        if not isinstance(data, dict):
            raise Q8Error(f"{path} is not a q8studio recipe.")
        if "q8studio_report" in data:  # a quantization report also holds the recipe of its run
            require_version(data["q8studio_report"], REPORT_VERSION, f"{path} is a report")
            if not isinstance(data.get("recipe"), dict):
                raise Q8Error(f"{path} is a report without a recipe (an evaluation report?); give a quantization "
                              "report or a recipe.")
            data = data["recipe"]
        # a hand-written recipe may leave the version out
        require_version(data.pop("q8studio_recipe", RECIPE_VERSION), RECIPE_VERSION, f"{path} is a recipe")
        return cls.from_dict(data)


def require_version(version: object, newest: int, what: str) -> None:
    """Settings of a newer format may mean something this version does not know: refuse rather than guess."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Q8Error(f"{what} with the version {version!r}, which no q8studio writes (versions are 1 to {newest}).")
    if version > newest:
        raise Q8Error(f"{what} of version {version}, newer than this q8studio reads ({newest}); update q8studio.")


def _require_type(name: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    """Settings come from hand-edited JSON too: "false" is not False, nor 5.5 a sample count."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise Q8Error(f"The recipe's {name} must be {what} (got {value!r}).")
