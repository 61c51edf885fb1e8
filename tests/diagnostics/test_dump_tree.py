"""``plait dump PID`` over a process tree (issue 13, point 4): the strands of a program's
plait children -- a process strand's warm worker, a ``plait.Process`` and a pool worker --
are dumped too, each under its process, with what they wait on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from plait.diagnostics._server import socket_path

pytestmark = pytest.mark.timeout(60)

PROGRAM = Path(__file__).parent / "programs" / "dump_tree.py"


def _wait_for_files(folder: Path, names: tuple[str, ...], child: subprocess.Popen[str]) -> None:
    """Until every child has written its ready file (after its waiter parked)."""
    deadline = time.monotonic() + 30
    while not all((folder / n).exists() for n in names):
        assert child.poll() is None, f"the program ended early ({child.returncode})"
        assert time.monotonic() < deadline, f"no ready files in {folder} after 30 s"
        time.sleep(0.02)


def _plait_dump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait.cli", "dump", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.02)
    return False


def test_plait_dump_pid_shows_each_plait_childs_strands_under_it(tmp_path: Path) -> None:
    program = subprocess.Popen(
        [sys.executable, str(PROGRAM), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kids: list[int] = []
    try:
        roles = ("process", "strand", "pool")
        _wait_for_files(tmp_path, roles, program)
        by_role = {role: int((tmp_path / role).read_text()) for role in roles}
        kids = list(by_role.values())
        as_json = _plait_dump(str(program.pid), "--json")
        text = _plait_dump(str(program.pid))
    finally:
        assert program.stdin is not None
        program.stdin.write("stop\n")
        program.stdin.close()
        try:
            program.wait(20)
        finally:
            if program.poll() is None:
                program.kill()
                program.wait(10)
            assert program.stdout is not None and program.stderr is not None
            program.stdout.close()
            err = program.stderr.read()
            program.stderr.close()
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["pid"] == program.pid
    main = [r for r in data["strands"] if r["name"] == "MainThread"]
    assert main and main[0]["state"] == "parked" and main[0]["waits_on_name"] == "stop"
    process_strands = {r["name"]: r for r in data["strands"] if r["kind"] == "process"}
    parent_strands = {
        "process": process_strands["plain-child"],
        "strand": process_strands["strand-child"],
    }
    assert parent_strands["process"]["pid"] == by_role["process"]
    assert parent_strands["strand"]["pid"] == by_role["strand"]
    children = {c["pid"]: c for c in data["children"]}
    assert set(children) == set(kids), (children.keys(), kids)
    for role, pid in by_role.items():
        child = children[pid]
        assert child["ppid"] == program.pid
        if role == "pool":
            assert child["strand"] is None  # a pool worker runs no process strand
        else:
            assert child["strand"].startswith(f"process {parent_strands[role]['name']!r}")
        waiter = [r for r in child["strands"] if r["name"] == f"{role}-waiter"]
        assert len(waiter) == 1, child["strands"]
        assert waiter[0]["state"] == "parked"
        assert waiter[0]["waits_on"].startswith("<locked plait.RLock")
        assert waiter[0]["waits_on_name"] == "gate"
        assert waiter[0]["owner"].startswith("thread 'MainThread'")
        assert any("(stuck_in_child)" in site for site in waiter[0]["stack"])

    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.startswith(f"plait dump of process {program.pid}:")
    for role, pid in by_role.items():
        header = f"  -- child process {pid} of {program.pid}"
        assert header in out
        section = out.split(header)[1].split("  -- child process")[0]
        if role != "pool":
            assert section.startswith(", running process '")
        assert f"  plait dump of process {pid}:" in section
        assert f"  thread '{role}-waiter' #" in section
        assert "(gate), held by thread 'MainThread'" in section

    assert program.returncode == 0, err
    assert _gone(kids), "a child of the dumped program outlived it"
    for pid in [program.pid, *kids]:
        assert not socket_path(pid).exists()


def test_a_child_of_a_process_that_does_not_serve_does_not_serve() -> None:
    from plait.diagnostics import _tree

    assert not socket_path(os.getpid()).exists()
    started: list[int] = []
    real = _tree._server.serve_dumps
    try:
        _tree._server.serve_dumps = lambda: started.append(1)  # type: ignore[assignment,misc,return-value]
        _tree._serve_if_parent_does(os.getpid())
    finally:
        _tree._server.serve_dumps = real  # type: ignore[misc]
    assert started == []


def test_plait_dump_of_a_dead_pid_is_still_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(done.stdout)
    result = _plait_dump(str(pid))
    assert result.returncode == 1
    assert f"no process with pid {pid}" in result.stderr
    assert "Traceback" not in result.stderr
