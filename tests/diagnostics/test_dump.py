"""``plait.dump()`` and ``plait dump PID``: every strand, what it waits on, who holds it,
where it is (coroutines too)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import plait
from plait.diagnostics import DumpRequestError, request_dump
from plait.diagnostics._server import socket_path
from plait.testing import wait_parked

pytestmark = pytest.mark.timeout(60)


def _waiting_thread(lock: plait.RLock) -> plait.Thread:
    def blocked_here() -> None:
        with lock:
            pass

    t = plait.Thread(target=blocked_here, name="blocked-one")
    t.start()
    wait_parked(on=lock, count=1)
    return t


def test_dump_shows_a_parked_thread_its_lock_holder_and_stack() -> None:
    the_lock = plait.RLock()
    with the_lock:
        t = _waiting_thread(the_lock)
        out = io.StringIO()
        text = plait.dump(out)
    t.join(10)
    assert out.getvalue() == text
    block = text.split("thread 'blocked-one'")[1].split("\n\n")[0]
    assert "parked" in block
    assert "waits on <locked plait.RLock" in block
    assert "(lock)" in block  # the name the waiting code knows it by
    assert "held by thread" in block
    assert "test_dump.py" in block and "(blocked_here)" in block


def test_dump_json_and_coroutine_stacks() -> None:
    lock = plait.RLock()
    lock.acquire()
    ready = threading.Event()

    async def coroutine_waiting() -> None:
        ready.set()
        async with lock:
            pass

    t = plait.Thread(target=lambda: asyncio.run(coroutine_waiting()), name="loop-thread")
    t.start()
    assert ready.wait(10)
    wait_parked(on=lock, count=1)
    try:
        data = json.loads(plait.dump(io.StringIO(), format="json"))
    finally:
        lock.release()
        t.join(10)
    assert data["pid"] == os.getpid()
    coros = [r for r in data["strands"] if r["kind"] == "async" and r["state"] == "parked"]
    assert len(coros) == 1
    record = coros[0]
    assert record["waits_on"].startswith("<locked plait.RLock")
    assert any("(coroutine_waiting)" in site for site in record["stack"])
    assert record["owner"].startswith("thread ")


def test_dump_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        plait.dump(io.StringIO(), format="yaml")


CHILD = textwrap.dedent(
    """
    import os, sys, time
    import plait
    from plait.diagnostics import serve_dumps
    serve_dumps()
    gate = plait.RLock()
    gate.acquire()
    def stuck_in_child():
        with gate:
            pass
    t = plait.Thread(target=stuck_in_child, name="child-waiter", daemon=True)
    t.start()
    from plait.testing import wait_parked
    wait_parked(on=gate, count=1)
    print(os.getpid(), flush=True)
    sys.stdin.read()
    """
)


def _plait_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_plait_dump_pid_from_another_process(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        path = socket_path(pid)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        done = _plait_cli("dump", str(pid))
        assert done.returncode == 0, done.stderr
        assert "thread 'child-waiter'" in done.stdout
        assert "(gate)" in done.stdout and "(stuck_in_child)" in done.stdout
        as_json = json.loads(_plait_cli("dump", str(pid), "--json").stdout)
        assert as_json["pid"] == pid
        assert any(r["name"] == "child-waiter" for r in as_json["strands"])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert not socket_path(pid).exists()  # removed at exit


def test_plait_dump_of_a_dead_pid_is_a_clear_error() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pid = int(child.stdout)
    done = _plait_cli("dump", str(pid))
    assert done.returncode == 1
    assert f"no process with pid {pid}" in done.stderr
    assert "Traceback" not in done.stderr


def test_plait_dump_of_a_process_not_serving_says_how_to_serve() -> None:
    with pytest.raises(DumpRequestError, match="not serving dumps: run it under `plait run`"):
        request_dump(os.getppid() if not socket_path(os.getppid()).exists() else 1)


def test_in_debug_mode_a_dump_says_how_long_each_wait_has_lasted() -> None:
    was = plait.debug(True)
    try:
        lock = plait.RLock()
        with lock:
            t = _waiting_thread(lock)
            records = json.loads(plait.dump(io.StringIO(), format="json"))["strands"]
        t.join(10)
    finally:
        plait.debug(was)
    waiting = [r for r in records if r["name"] == "blocked-one"]
    assert len(waiting) == 1
    assert waiting[0]["waiting_s"] is not None and waiting[0]["waiting_s"] >= 0
