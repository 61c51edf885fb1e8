"""The ``plait`` command line: --version, tour, tour --list, tour NAME."""

from __future__ import annotations

import subprocess
import sys

import pytest

import plait
from plait.cli import main
from plait.tour import all_scenes


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"plait {plait.__version__}"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "tour" in capsys.readouterr().out


def test_tour_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [s.name for s in all_scenes(opt_in=True)]


def test_tour_unknown_name_fails_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "no-such-scene"]) == 2
    err = capsys.readouterr().err
    assert "no-such-scene" in err
    assert "plait tour --list" in err


def test_tour_named_scene(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "threads-timing"]) == 0
    out = capfd.readouterr().out
    assert "threads-timing" in out
    assert "tour done: 1 scene(s)" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_module_entry_point() -> None:
    """``python -m plait.cli`` is the same command (the tour tests run it in full)."""
    done = subprocess.run(
        [sys.executable, "-m", "plait.cli", "tour", "--list"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == all_scenes()[0].name
