"""The ``q8studio`` GUI entry: its arguments, and the scripted demo run that saves a screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import qInstallMessageHandler, qWarning
from PySide6.QtGui import QImage

from q8studio.cli import COMMANDS
from q8studio.core.model import load_model
from q8studio.core.refusals import quantize_refusal
from q8studio.gui.app import OFFSCREEN_NOISE, parse_args, quiet_offscreen_noise


def test_arguments() -> None:
    args = parse_args(["--demo", "--run", "--screenshot", "x.png"])
    assert args.demo and args.run and args.screenshot == Path("x.png") and args.model is None
    assert parse_args(["m.onnx"]).model == Path("m.onnx")
    for bad in (["m.onnx", "--demo"], ["--run"], ["--screenshot", "x.png"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_help_names_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{command}," in text or f"{command}." in text for command in COMMANDS)


def test_demo_run_screenshot_from_the_command_line(tmp_path: Path) -> None:
    shot = tmp_path / "docs" / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "q8studio", "--demo", "--run", "--screenshot", str(shot)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert OFFSCREEN_NOISE not in done.stderr
    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1400, 900)


def test_offscreen_size_hint_warnings_are_dropped_and_other_qt_messages_kept(capsys) -> None:
    quiet_offscreen_noise()
    try:
        qWarning(OFFSCREEN_NOISE)
        qWarning("a message the user should see")
    finally:
        qInstallMessageHandler(None)
    assert capsys.readouterr().err == "a message the user should see\n"


def test_without_a_display_the_window_is_refused_in_one_line_and_a_screenshot_needs_none(tmp_path: Path) -> None:
    """Qt would abort with a page of plugin messages; a screenshot is saved offscreen."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), HOME=str(tmp_path))
    refused = subprocess.run([sys.executable, "-m", "q8studio", "--demo"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and refused.stderr.startswith("q8studio: error: there is no display")
    assert refused.stderr.count("\n") == 1
    shot = tmp_path / "start.png"
    saved = subprocess.run([sys.executable, "-m", "q8studio", "--demo", "--screenshot", str(shot)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    assert (QImage(str(shot)).width(), QImage(str(shot)).height()) == (1400, 900)


def test_a_model_that_fails_to_load_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "q8studio", str(bad), "--screenshot", str(tmp_path / "x.png")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and (tmp_path / "x.png").is_file()


def test_run_on_an_already_quantized_model_gives_the_reason_and_exits_1(tmp_path: Path, demo_int8_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "q8studio", str(demo_int8_path), "--run", "--screenshot", str(tmp_path / "x.png")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("q8studio: error:")]
    assert done.returncode == 1
    assert errors == [f"q8studio: error: {quantize_refusal(load_model(demo_int8_path))}"]
