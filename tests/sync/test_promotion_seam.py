"""One promotion seam (issue 9, point 4): a queue or primitive shared with processes keeps
its public class; its state moves into a backend, by composition, in one place
(``plait._ipc.promotion.promote``); the backends neither subclass nor import the public
classes."""

from __future__ import annotations

import ast
import gc
import pickle
import threading
import weakref
from pathlib import Path
from typing import Any

import _xproc_children as kids
import pytest

import plait
import plait.testing
from plait._channels import _queue_waits
from plait._ipc import promotion
from plait._ipc.context import get_context
from plait._sync import _common, _shared
from plait._sync._lock import SPEEDUPS

PKG = Path(plait.__file__).parent
PUBLIC_MODULES = {"_lock", "_rlock", "_semaphore", "_event", "_condition", "_barrier"}
PUBLIC_MODULES |= {"_queue", "_queue_kinds", "_pipe"}
BACKEND_FILES = ["_sync/_shared.py", "_sync/_shared_wait.py", "_sync/_xproc.py"]
BACKEND_FILES += ["_channels/_xproc.py", "_channels/_queue_batch_shared.py", "_ipc/promotion.py"]


def _make_all() -> list[Any]:
    return [
        plait.Lock(),
        plait.RLock(),
        plait.Semaphore(2),
        plait.BoundedSemaphore(3),
        plait.Event(),
        plait.Condition(plait.Lock()),
        plait.Barrier(2),
        plait.Queue(),
        plait.LifoQueue(3),
        plait.PriorityQueue(),
        plait.SimpleQueue(),
    ]


def test_a_shared_primitive_keeps_its_public_class() -> None:
    objs = _make_all()
    classes = [type(o) for o in objs]
    for obj in objs:
        assert pickle.loads(pickle.dumps(obj)) is obj  # shares it; the same object here
    assert [type(o) for o in objs] == classes
    for obj, cls in zip(objs, classes, strict=True):
        assert obj._shared is not None, obj
        assert isinstance(obj._shared, promotion.Backend)
        assert obj._shared.kind == cls._backend_kind
        if not isinstance(obj, plait.Queue):
            assert isinstance(obj._shared, _shared.Backend)
        assert isinstance(obj, cls)
        assert cls is getattr(plait, cls.__name__)  # the public class itself


def test_no_shared_class_subclasses_a_public_one() -> None:
    public = [plait.Lock, plait.RLock, plait.Semaphore, plait.BoundedSemaphore, plait.Event]
    public += [plait.Condition, plait.Barrier]
    public += [plait.Queue, plait.LifoQueue, plait.PriorityQueue, plait.SimpleQueue]
    for obj in _make_all():  # (shares every kind, so every backend is loaded)
        pickle.dumps(obj)
    for cls in public:
        if not issubclass(cls, plait.Queue):  # (tests derive queues of their own)
            assert [c for c in cls.__subclasses__() if c not in public] == []
    assert plait.Lock.__subclasses__() == []
    kinds = {backend.kind for backend in promotion._BACKENDS.values()}
    assert {"queue", "lifo queue", "priority queue", "lock", "event", "barrier"} <= kinds
    for backend in promotion._BACKENDS.values():
        assert not any(issubclass(backend, cls) for cls in public), backend


def test_one_marker_for_every_waiter_moved_by_a_promotion() -> None:
    assert _queue_waits.MIGRATED is promotion.MIGRATED
    assert _common.MIGRATED is promotion.MIGRATED


def test_backends_import_no_public_class_module() -> None:
    for name in BACKEND_FILES:
        tree = ast.parse((PKG / name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.rsplit(".", 1)[-1])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.rsplit(".", 1)[-1] for alias in node.names)
        assert not imported & PUBLIC_MODULES, (name, imported & PUBLIC_MODULES)


def test_a_child_unpickles_the_public_class_over_a_backend() -> None:
    objs = _make_all()
    q: plait.Queue[Any] = plait.Queue()
    objs.append(q)
    child = get_context().Process(target=kids.report_types, args=(objs, q))
    child.start()
    try:
        got = q.get(timeout=30)
    finally:
        child.join(30)
    assert got == [(type(o), True, True) for o in objs]
    assert child.exitcode == 0


def test_the_lock_keeps_its_c_fast_path_until_shared() -> None:
    lock = plait.Lock()
    if SPEEDUPS:
        assert type(lock._inner).__name__ == "Inner"  # (the C accelerator's own state)
    pickle.dumps(lock)
    # the backend is the lock's state now (with the C accelerator, through a SharedInner)
    assert lock._inner is lock._shared or lock._inner.backend is lock._shared
    with lock:
        assert lock.locked() and lock._shared.locked()
    assert not lock.locked()


KINDS = ["lock", "rlock", "semaphore", "event", "condition", "queue-get", "queue-put"]
KINDS += ["lifo-get", "queue-join"]


@pytest.mark.parametrize("kind", KINDS)
def test_promotion_moves_a_local_waiter_to_the_backend(kind: str) -> None:
    """A thread parked on the local state when the object is shared waits on, and is
    woken through, the backend (its class unchanged all along)."""
    cond_lock = plait.Lock()
    objs: dict[str, Any] = {
        "lock": plait.Lock(),
        "rlock": plait.RLock(),
        "semaphore": plait.Semaphore(0),
        "event": plait.Event(),
        "condition": plait.Condition(cond_lock),
        "queue-get": plait.Queue(),
        "queue-put": plait.Queue(1),
        "lifo-get": plait.LifoQueue(),
        "queue-join": plait.Queue(),
    }
    obj = objs[kind]
    cls = type(obj)
    if kind in ("lock", "rlock"):
        obj.acquire()
    elif kind in ("queue-put", "queue-join"):
        obj.put("first")
    done: list[bool] = []

    def waiter() -> None:
        if kind in ("lock", "rlock", "semaphore"):
            done.append(obj.acquire(timeout=20))
            obj.release()
        elif kind == "event":
            done.append(obj.wait(20))
        elif kind in ("queue-get", "lifo-get"):
            done.append(obj.get(timeout=20) == "item")
        elif kind == "queue-put":
            obj.put("second", timeout=20)
            done.append(True)
        elif kind == "queue-join":
            obj.join()
            done.append(True)
        else:
            with obj:
                done.append(obj.wait_for(lambda: bool(done) or flag, 20))

    flag = False
    t = threading.Thread(target=waiter, daemon=True)
    t.start()
    try:
        plait.testing.wait_parked(on=obj, count=1, timeout=20)
        pickle.dumps(obj)  # shared while the thread waits on the local state
        assert type(obj) is cls and obj._shared is not None
        if kind in ("lock", "rlock", "semaphore"):
            obj.release()
        elif kind == "event":
            obj.set()
        elif kind in ("queue-get", "lifo-get"):
            obj.put("item")
        elif kind == "queue-put":
            assert obj.get(timeout=20) == "first"
        elif kind == "queue-join":
            assert obj.get(timeout=20) == "first"
            obj.task_done()
        else:
            with obj:
                flag = True
                obj.notify_all()
        t.join(20)
        assert not t.is_alive()
        assert done and done[0]
        if kind == "queue-put":
            assert obj.get(timeout=20) == "second" and obj.qsize() == 0
    finally:
        flag = True
        if kind == "event":
            obj.set()
        t.join(20)


def test_the_seam_refuses_an_object_with_no_shared_backend() -> None:
    limiter = plait.CapacityLimiter(1)
    with pytest.raises(TypeError, match="CapacityLimiter cannot be shared"):
        promotion.promote(limiter)
    with pytest.raises(TypeError, match="CapacityLimiter cannot be shared"):
        pickle.dumps(limiter)


def test_a_queue_and_a_lock_share_one_registry_of_known_objects() -> None:
    q: plait.Queue[Any] = plait.Queue()
    lock = plait.Lock()
    pickle.dumps(q), pickle.dumps(lock)
    assert promotion._known[q._shared.prefix] is q
    assert promotion._known[lock._shared.prefix] is lock


def _wait_on(obj: Any, kind: str, by: str) -> threading.Thread:
    """A strand of kind ``by`` (a thread, or a coroutine on its own loop in a thread) that
    waits on ``obj`` with no time limit: the wait the deadlock detector records."""
    if by == "thread":
        if kind == "lock":
            return threading.Thread(target=lambda: obj.acquire() and obj.release())
        return threading.Thread(target=obj.wait if kind == "event" else obj.join)

    async def main() -> None:
        if kind == "event":
            await obj.async_wait()
        elif kind == "queue-join":
            await obj.async_join()
        else:
            async with obj:
                pass

    return threading.Thread(target=plait.run, args=(main,))


@pytest.mark.parametrize("by", ["thread", "coroutine"])
@pytest.mark.parametrize("kind", ["event", "queue-join", "lock"])
def test_an_object_shared_after_a_strand_waited_on_it_is_freed_with_its_segment(
    kind: str, by: str
) -> None:
    # The deadlock detector records a strand's untimed wait (with the object waited on);
    # when the object becomes shared, that record must not keep it -- and its segment in
    # /dev/shm -- alive after the program drops it.
    obj: Any = {"event": plait.Event, "queue-join": plait.Queue, "lock": plait.Lock}[kind]()
    if kind == "queue-join":
        obj.put("x")
    elif kind == "lock":
        obj.acquire()
    waiting = _wait_on(obj, kind, by)
    waiting.start()
    plait.testing.wait_parked(on=obj, count=1, timeout=20)
    pickle.dumps(obj)  # shared while the strand waits on the local state
    prefix = obj._shared.prefix
    if kind == "event":
        obj.set()
    elif kind == "queue-join":
        obj.get(timeout=20)
        obj.task_done()
    else:
        obj.release()
    waiting.join(20)
    assert not waiting.is_alive()
    assert any(p.name.startswith(prefix) for p in Path("/dev/shm").iterdir())
    gone = weakref.ref(obj)
    del obj
    gc.collect()
    assert gone() is None, gc.get_referrers(gone())
    assert not any(p.name.startswith(prefix) for p in Path("/dev/shm").iterdir())
