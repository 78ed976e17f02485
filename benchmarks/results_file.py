"""benchmarks/RESULTS.md: each benchmark owns one ``## `` section and replaces only that one."""

from __future__ import annotations

import re
from pathlib import Path

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
