"""What reports and --version say a result was produced with."""

from __future__ import annotations

import onnxruntime

import q8studio
from q8studio.core.environment import cpu_model, environment, software_versions, usable_cpus, version_line


def test_the_versions_are_those_installed() -> None:
    versions = software_versions()
    assert versions["q8studio"] == q8studio.__version__ and versions["onnxruntime"] == onnxruntime.__version__
    assert software_versions("no-such-distribution-q8")["no-such-distribution-q8"] == "not installed"


def test_the_machine_is_named() -> None:
    machine = environment()["machine"]
    assert machine["cpu"] == cpu_model() != "" and machine["cpus"] == usable_cpus() >= 1


def test_the_version_line_reads_as_one_sentence() -> None:
    line = version_line()
    assert line.startswith(f"q8studio {q8studio.__version__} (onnxruntime {onnxruntime.__version__}, ")
    assert line.endswith(")") and "\n" not in line
