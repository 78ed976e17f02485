"""The software and machine a result was produced on.

An int8 model depends on the onnxruntime quantizer that wrote it, and a latency on the runtime and
the CPU that measured it: a report without them cannot be compared with the next one.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .. import __version__

LIBRARIES = ("onnxruntime", "onnx", "numpy")
"""The libraries that decide what q8studio computes (the GUI adds its own to the About box)."""


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform reports."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    named = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(named, "") or platform.processor() or "unknown CPU"


def usable_cpus() -> int:
    """The CPUs this process may run on (a container or a task set can allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def installed_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def software_versions(*distributions: str) -> dict[str, str]:
    """q8studio, Python and each distribution (by default :data:`LIBRARIES`) with its version."""
    found = {"q8studio": __version__, "python": platform.python_version()}
    found.update({name: installed_version(name) for name in distributions or LIBRARIES})
    return found


def environment() -> dict[str, object]:
    """What a report records beside its figures: the software and the machine."""
    return {
        "software": software_versions(),
        "machine": {"cpu": cpu_model(), "cpus": usable_cpus(), "system": f"{platform.system()} {platform.machine()}"},
    }


def version_line() -> str:
    """``q8studio 0.1.0 (onnxruntime 1.32.0, onnx 1.23.2, numpy 2.4.6, Python 3.11.7)``."""
    versions = software_versions()
    python = versions.pop("python")
    own = versions.pop("q8studio")
    return f"q8studio {own} ({', '.join(f'{name} {v}' for name, v in versions.items())}, Python {python})"
