"""benchmarks/RESULTS.md: each benchmark owns one ``## `` section and replaces only that one."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from q8studio.core.environment import LIBRARIES, cpu_model, installed_version, usable_cpus

RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_section(text: str, title: str, section: str) -> str:
    """``text`` with its ``## title`` section (up to the next ``## `` heading) replaced by ``section``,
    or with ``section`` appended when there is none."""
    pattern = re.compile(rf"^## {re.escape(title)}\s*\n.*?(?=^## |\Z)", flags=re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1)
    return text.rstrip() + "\n\n" + section


def record_section(title: str, section: str, path: Path = RESULTS) -> None:
    """Write ``section`` (starting with its ``## title`` heading) into ``path``; other sections stay."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(current, title, section).rstrip() + "\n")


def text_lines(path: str) -> list[str]:
    """The lines of a text file such as /proc/meminfo, or none where it does not exist."""
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def measured_with(*packages: str) -> str:
    """What a section's figures were measured on, e.g. ``AMD EPYC, 2 CPUs; Python 3.11.7, onnxruntime
    1.32.0, ...``. Each section names its own: sections are re-run at different times, on whichever
    machine the work landed, and the libraries move on."""
    libraries = ", ".join(f"{name} {installed_version(name)}" for name in packages or LIBRARIES)
    return f"{cpu_model()}, {usable_cpus()} CPUs; Python {platform.python_version()}, {libraries}"
