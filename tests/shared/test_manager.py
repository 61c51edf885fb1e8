"""plait.Manager: multiprocessing.Manager's API over plait.shared, no server process."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import plait
from plait._errors import ClosedError

sys.path.insert(0, str(Path(__file__).parent))
import _children

HERE = Path(__file__).parent


def test_seed_manager_program_runs_as_the_seed_says() -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "seed_manager.py")],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=HERE,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
        stdin=subprocess.DEVNULL,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert done.stdout.count("进程:") == 10  # (children print in pieces: lines interleave)
    d, lst = ast.literal_eval(lines[-2]), ast.literal_eval(lines[-1])
    assert d == {**{i: i for i in range(10)}, "name": "alvin"}
    assert lst[:5] == [0, 1, 2, 3, 4] and sorted(lst[5:]) == list(range(10))


def test_manager_objects_cross_to_a_process() -> None:
    with plait.Manager() as m:
        v = m.Value("i", 41)
        arr = m.Array("i", [1, 2, 3])
        ns = m.Namespace(x=1)
        lock, q = m.Lock(), m.Queue()
        p = plait.Process(target=_children.use_manager_objects, args=(v, arr, ns, lock, q))
        p.start()
        try:
            assert q.get(timeout=30) == ("done", [2, 2, 3])
        finally:
            p.join(30)
        assert p.exitcode == 0
        assert v.value == 42 and v.get() == 42
        assert list(arr) == [2, 2, 3] and len(arr) == 3
        assert ns.seen == 2 and repr(ns) == "Namespace(x=1, seen=2)"
        with pytest.raises(AttributeError):
            ns.missing  # noqa: B018
        with pytest.raises(TypeError):
            arr[0] = "not an int"
        v.set("any picklable value")
        assert v.value == "any picklable value"
    with pytest.raises(ClosedError):
        v.value  # noqa: B018
    with pytest.raises(ClosedError):
        m.list()


def test_manager_is_plait_shared() -> None:
    assert plait.Manager is plait.shared.Manager
    m = plait.Manager()
    m.start()
    d = m.dict(a=1)
    assert isinstance(d, plait.shared.SharedDict)
    m.shutdown()
    m.join()
