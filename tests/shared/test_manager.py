"""plait.Manager: multiprocessing.Manager's API over plait.shared, no server process."""

from __future__ import annotations

import ast
import gc
import multiprocessing
import os
import subprocess
import sys
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

import pytest

import plait
from plait._errors import BrokenResourceError, ClosedError

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


class _PlaitManager(plait.Manager):
    pass


class _StdlibManager(BaseManager):
    pass


_PlaitManager.register("Counter", _children.Counter)
_StdlibManager.register("Counter", _children.Counter)


@pytest.mark.parametrize("kind", ["plait", "stdlib"])
def test_register_serves_one_object_that_every_process_changes(kind: str) -> None:
    # The same program against the stdlib's BaseManager and plait.Manager: same answers.
    manager: Any = _PlaitManager() if kind == "plait" else _StdlibManager()
    start = plait.Process if kind == "plait" else multiprocessing.get_context("spawn").Process
    with manager:
        counter = manager.Counter(5)
        p = start(target=_children.add_through_proxy, args=(counter, 2, 3))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert counter.get() == 11 and counter.add(1) == 12
        with pytest.raises(ValueError, match="failed in the server"):
            counter.fail()
        with pytest.raises(AttributeError):
            counter._private()
        other = manager.Counter()
        assert other.get() == 0 and counter.get() == 12  # two objects
    assert not hasattr(plait.Manager, "Counter")  # registered on the subclass only


def test_a_manager_collected_without_shutdown_stops_its_server() -> None:
    manager = _PlaitManager()
    counter = manager.Counter(1)
    assert counter.add(1) == 2
    assert manager._server is not None
    server = manager._server.process
    del manager
    gc.collect()
    server.join(10)
    assert not server.is_alive()
    with pytest.raises((ClosedError, BrokenResourceError)):
        counter.get()


def test_a_killed_server_fails_the_proxies_call_instead_of_hanging() -> None:
    with _PlaitManager() as manager:
        counter = manager.Counter(1)
        assert manager._server is not None
        manager._server.process.kill()
        manager._server.process.join(10)
        with pytest.raises(BrokenResourceError, match="is gone"):
            counter.get()


def test_register_refuses_what_it_cannot_serve_and_names_the_alternative() -> None:
    class M(plait.Manager):
        pass

    with pytest.raises(NotImplementedError, match="BaseManager"):
        M.register("Thing")  # a connecting client's registration: no callable
    with pytest.raises(NotImplementedError, match="proxytype"):
        M.register("Thing", dict, proxytype=object)
    M.register("Only", _children.Counter, exposed=["get"])
    with M() as m:
        only = m.Only(3)
        assert only.get() == 3
        with pytest.raises(AttributeError, match="exposed"):
            only.add(1)
    with pytest.raises(ClosedError):
        m.Only()


def test_no_server_means_no_address_and_no_connect() -> None:
    m = plait.Manager()
    with pytest.raises(NotImplementedError, match="no server process"):
        m.connect()
    with pytest.raises(NotImplementedError, match="BaseManager"):
        m.address  # noqa: B018
    with pytest.raises(NotImplementedError, match="passed to them"):
        plait.Manager(address=("127.0.0.1", 50000))
    m.shutdown()


def test_manager_pool_is_a_plait_pool_closed_at_shutdown() -> None:
    with plait.Manager() as m:
        pool = m.Pool(2)
        assert isinstance(pool, plait.Pool)
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]  # what the stdlib's proxy returns
        assert pool.apply_async(pow, (2, 5)).get(timeout=30) == 32
    with pytest.raises(plait.PoolClosedError):  # terminated by shutdown
        pool.map(abs, [1])
