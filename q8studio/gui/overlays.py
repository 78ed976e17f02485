"""What can colour the graph after a run, and on which scale.

Error metrics use fixed scales anchored on the field's rule of thumb (around 30 dB SQNR or more
is usually harmless for int8), so a healthy layer never looks alarming just because others are
better; only MSE, whose size depends on the tensor's range, is scaled to the run. The speed-up is
diverging around 1x on a ratio scale, and the kernel overlay has two named colours.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.model import LoadedModel
from ..core.profile import ProfileReport, kernel_overlay, speedup_overlay
from ..core.workflow import METRICS, StudioRun, overlay_values
from .graph_items import OVERLAY_STOPS, OverlayScale
from .graph_view import GraphView

FLOAT_KERNEL, INTEGER_KERNEL = OVERLAY_STOPS[0], OVERLAY_STOPS[-1]


@dataclass(frozen=True)
class Overlay:
    """One choice of the "Colour graph by" box: its menu label, legend title and colour scale."""

    label: str
    title: str
    low_is_bad: bool = True
    vmin: float | None = None
    vmax: float | None = None
    spacing: str = "linear"
    categories: tuple[tuple[str, str], ...] = ()
    unit: str = ""


OVERLAYS: dict[str, Overlay] = {
    "sqnr_db": Overlay(METRICS["sqnr_db"][0], "int8 SQNR (dB) · ≥ 30 is usually harmless", vmin=15.0, vmax=35.0),
    "cosine": Overlay(METRICS["cosine"][0], "int8 cosine similarity · fixed scale", vmin=0.98, vmax=0.9998,
                      spacing="log_to_one"),
    "mse": Overlay(METRICS["mse"][0], "int8 MSE · scaled to this run", low_is_bad=METRICS["mse"][1]),
    "speedup": Overlay("int8 speed-up (×)", "int8 speed-up per layer · < 1× is slower", vmin=0.25, vmax=4.0,
                       spacing="log", unit="×"),
    "kernel": Overlay("kernel: integer / float", "kernel that ran it in the int8 model",
                      categories=(("float kernel", FLOAT_KERNEL), ("integer kernel", INTEGER_KERNEL))),
}
"""Keys of :data:`~q8studio.core.workflow.METRICS` (per-layer error) and of the speed profile."""


def fixed_scale(key: str) -> OverlayScale:
    """The colour scale of a fixed-scale overlay, for table cells that should read like the graph."""
    style = OVERLAYS[key]
    assert style.vmin is not None and style.vmax is not None, f"{key} is scaled to each run"
    return OverlayScale({}, style.title, style.low_is_bad, style.vmin, style.vmax, style.spacing, unit=style.unit)


def _overlay_data(key: str, model: LoadedModel, run: StudioRun,
                  profile: ProfileReport | None) -> dict[str, float] | None:
    """Node -> value for ``key``, as the core computes it; None when the profile it needs is missing."""
    if key == "speedup":
        return speedup_overlay(profile) if profile is not None else None
    if key == "kernel":
        return kernel_overlay(profile) if profile is not None else None
    return overlay_values(run.layer_rows(), key, model, run.result.prepared.model)


def show_overlay(graph: GraphView, key: str, model: LoadedModel | None, run: StudioRun | None,
                 profile: ProfileReport | None) -> None:
    """Colour ``graph`` by ``key``; kind colours while there is no run (or no profile for a speed overlay)."""
    values = _overlay_data(key, model, run, profile) if model is not None and run is not None else None
    if values is None:
        graph.set_overlay(None)
        return
    style = OVERLAYS[key]
    graph.set_overlay(values, title=style.title, low_is_bad=style.low_is_bad, vmin=style.vmin, vmax=style.vmax,
                      spacing=style.spacing, categories=style.categories, unit=style.unit)
