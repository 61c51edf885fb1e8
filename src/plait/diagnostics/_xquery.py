"""Deadlocks across processes, raised: follow the wait-for graph into the other processes.

A shared lock's holder word names the process that holds it, not the strand. So each
process that waits with no time limit on a shared object answers questions about its own
strands on a private socket (Linux abstract namespace, named by the process's tag -- pid
and start time, so a reused pid is never asked by mistake; only the same user may ask,
checked by the peer's credentials): *"the strand of yours holding the shared object X --
what does it wait for, with no time limit?"* It follows its own chain (local locks,
joins) until that chain reaches a shared object, and answers with the links it passed and
where the chain goes on: (the process holding that object, the object).

A strand about to wait with no time limit on a shared lock or semaphore held by other
processes, while a shared object this process holds has waiters announced, asks those
processes, then the ones they lead to (a semaphore leads to every process holding a
permit; its holder strands are known in debug mode); when every strand reached is stuck
and the walk came back through the waiting strand, the wait closes a cycle and raises
:class:`plait.DeadlockError` instead of parking, naming every strand, object and line of
every process of the cycle. Cost when there is no cycle: a few reads of shared words per
untimed wait on a shared object; a question (a local socket round trip) only when this
process holds something another waits for.

Each strand records its wait before it asks, so of two strands closing a cycle at once at
least one sees the other. Both may: then each answer names the strands it passed that were
still checking, and only the one with the smallest key (process tag, wait) raises; a
larger one walks again once they are done (the first one's raise has then opened the
cycle, or it parked without seeing it and the cycle is this strand's to raise). A process
that does not answer (it holds the GIL, it is not plait's) leaves the wait to
:mod:`._xwaitfor`'s report.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from plait._core.cancel import sleep
from plait._core.parking import CANCELLED, QUEUED, Waiter
from plait._core.strands import Strand
from plait._errors import Cancelled, DeadlockError
from plait._ipc import doorbell
from plait._sync import _robust, _xproc
from plait._sync._lock import _LockCore
from plait._sync._robust import NSLOTS
from plait._sync._semaphore import Semaphore
from plait.diagnostics import _asleep, _stacks, _waitfor

__all__ = ["MAX_HOPS", "check", "ensure_responder"]

MAX_HOPS = 8
ASK_TIMEOUT = 0.5  # seconds: a process that does not answer by then is left out
DEFER_PATIENCE = 2.0  # seconds a strand lets a rival closing the same cycle go first
_DEFER = object()  # _check's answer: a rival with a smaller key closes this cycle too

# For tests: called with the waiter and "walk" as its check starts, "verdict" when its walk
# found a cycle, "defer" each time it lets a rival go first, and "raise" when it has left
# its queue to raise (two processes meet at each, so that both walk, decide and leave while
# the other is still checking).
check_hook: Callable[[Waiter, str], None] | None = None
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _address(tag: int) -> bytes:
    return f"\0plait-xwait-{os.getuid()}-{tag}".encode()


class _Responder:
    __slots__ = ("pid", "sock")

    def __init__(self) -> None:
        self.pid = 0
        self.sock: socket.socket | None = None


_responder = _Responder()
_start_lock = threading.Lock()


def ensure_responder() -> None:
    """Answer other processes' questions about this one's waits (idempotent, per process)."""
    if _responder.pid == os.getpid():
        return
    with _start_lock:
        if _responder.pid == os.getpid():
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(_address(_robust.my_tag()))
            sock.listen(8)
        except OSError:  # no abstract namespace here, or the name is taken: not asked
            sock.close()
            _responder.pid = os.getpid()
            return
        _responder.sock, _responder.pid = sock, os.getpid()
        threading.Thread(target=_serve, args=(sock,), name="plait-xwait", daemon=True).start()


def _forget_after_fork() -> None:
    global _start_lock
    _start_lock = threading.Lock()
    if _responder.sock is not None:  # (a fork copies the listener: close the child's copy)
        _responder.sock.close()
    _responder.sock, _responder.pid = None, 0


os.register_at_fork(after_in_child=_forget_after_fork)


def _serve(sock: socket.socket) -> None:
    _asleep.note_service_thread()  # it never wakes a program's waits
    uid = os.getuid()
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            try:
                cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
                if _CRED.unpack(cred)[1] != uid:
                    continue  # another user's process: it learns nothing
                conn.settimeout(2)
                prefix = conn.recv(256).decode("ascii", "replace").strip()
                answer = _answer(prefix)
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except (OSError, ValueError):
                continue


def _state_of(prefix: str) -> Any:
    for state in list(_xproc._states):
        if state.prefix == prefix:
            return state
    return None


_objects: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _object_of(state: Any) -> Any:
    """The local object promoted onto ``state`` (found once: the heap is searched)."""
    found = _objects.get(state.prefix)
    if found is not None and found._shared is state:
        return found
    import gc

    for ref in gc.get_referrers(state):
        if isinstance(ref, (_LockCore, Semaphore)) and ref._shared is state:
            try:
                _objects[state.prefix] = ref
            except TypeError:  # (not weakly referable: searched again next time)
                pass
            return ref
    return None


def _holder_here(obj: Any) -> Strand | None:
    """The strand of this process holding the shared lock ``obj``, when it is known."""
    if not isinstance(obj, _LockCore):
        return None
    if _robust.tag_pid(int(obj._shared.words[_xproc.HOLDER])) != os.getpid():
        return None
    return obj._holder()


def _link(strand: Strand, obj: Any, holder: str, here: Any = None) -> list[str]:
    """A :class:`WaitLink`'s fields, then the prefix of the shared object waited on."""
    frames = _stacks.frames_of(strand, current=here)
    name = _stacks.name_of(obj, frames)
    kind = "plait." + type(obj).__name__.removeprefix("Shared")  # (the class the user made)
    what = f"{kind} {name!r}" if name else f"{kind} at {id(obj):#x}"
    where = f"{_stacks.describe_strand(strand)} of process {os.getpid()}"
    prefix = obj._shared.prefix if _is_shared(obj) else ""
    return [where, what, _stacks.site_of(_stacks.user_frame(frames)), holder, "?", prefix]


class _SharedWaits:
    """The untimed waits on shared objects, held so that they keep nothing alive (a stale
    entry must not keep a shared object's segment open): by strand, the ``id()`` of its
    waiter -- found again as ``strand.waiter`` once parked, or in ``checking`` while its
    check runs."""

    __slots__ = ("checking", "ids")

    def __init__(self) -> None:
        self.ids: weakref.WeakKeyDictionary[Strand, int] = weakref.WeakKeyDictionary()
        self.checking: dict[Strand, Waiter] = {}


_shared_waits = _SharedWaits()


def _untimed_wait_of(strand: Strand) -> Waiter | None:
    """``strand``'s untimed wait, on an object of this process or a shared one."""
    waiter = _waitfor.untimed_wait_of(strand)
    if waiter is not None:
        return waiter
    waits = _shared_waits
    key = waits.ids.get(strand)
    if key is None:
        return None
    waiter = waits.checking.get(strand) or strand.waiter
    if waiter is None or id(waiter) != key or waiter.state != QUEUED:
        return None
    return waiter


def _holders_here(obj: Any) -> list[Strand] | None:
    """The strands of this process holding the shared ``obj`` (a lock, or a semaphore's
    permits: known in debug mode, when they add up to this process's count); ``None``
    when they cannot be told."""
    if isinstance(obj, _LockCore):
        holder = _holder_here(obj)
        return None if holder is None else [holder]
    if isinstance(obj, Semaphore) and obj._shared is not None:
        table = _waitfor._sem_holders
        held = table.get(obj) if table is not None else None
        if not held:
            return None
        holders = [s for s, n in list(held.items()) if n > 0]
        if sum(held[s] for s in holders) != obj._shared.slots.count():
            return None  # a permit taken or given that debug mode did not see
        return holders
    return None


def _exits(obj: Any) -> list[list[Any]] | None:
    """Where a wait on the shared ``obj`` leads: ``[tag, prefix]`` of each process holding
    it; ``None`` when it may end by itself (free, a permit left, holders not all known)."""
    state = obj._shared
    words = state.words
    if isinstance(obj, _LockCore):
        tag = int(words[_xproc.HOLDER])
        return [[tag, state.prefix]] if tag else None
    if words[_xproc.VALUE] > 0 or words[_xproc.UNCOUNTED]:
        return None  # a permit is free, or held by a process without a slot (unknown)
    slots = state.slots.words
    found = [
        [int(slots[2 * j]), state.prefix]
        for j in range(NSLOTS)
        if slots[2 * j] and slots[2 * j + 1] > 0
    ]
    total = sum(int(slots[2 * j + 1]) for j in range(NSLOTS) if slots[2 * j])
    if not found or total != words[_xproc.INITIAL]:
        return None  # released by some process that holds none: a signal, not a pool
    return found


def _is_shared(obj: object) -> bool:
    return isinstance(obj, (_LockCore, Semaphore)) and obj._shared is not None


def _follow(strands: list[Strand], me: Strand | None = None) -> dict[str, Any]:
    """From ``strands`` (holding what was asked about), along their untimed waits in this
    process, to the shared objects where the chains leave it: stuck only if every strand
    reached waits with no time limit on something held by strands that do too. Returns
    the links passed, where they lead (``next``), and whether ``me`` was among them."""
    links: list[list[str]] = []
    exits: list[list[Any]] = []
    checking: list[list[int]] = []  # strands reached whose own check is running now
    seen: set[Strand] = set()
    todo = list(strands)
    while todo:
        strand = todo.pop(0)
        if strand in seen:
            continue
        seen.add(strand)
        if strand is me:
            continue  # the asking strand: its wait is the walk's first link
        if len(seen) > 256:
            return {"stuck": False}
        waiter = _untimed_wait_of(strand)
        if waiter is None:
            return {"stuck": False}  # running, or its wait ends by itself
        if _shared_waits.checking.get(strand) is waiter:
            checking.append([_robust.my_tag(), id(waiter)])
        obj: Any = waiter.on
        if _is_shared(obj):
            found = _exits(obj)
            if found is None:
                return {"stuck": False}
            held_by = " and ".join(f"process {_robust.tag_pid(t)}" for t, _ in found)
            links.append(_link(strand, obj, held_by))
            exits.extend(found)
            continue
        holders = _waitfor._holders_of(obj)
        if holders is None:
            return {"stuck": False}
        links.append(_link(strand, obj, " and ".join(map(_stacks.describe_strand, holders))))
        todo.extend(holders)
    return {
        "stuck": True,
        "links": links,
        "next": exits,
        "through_me": me in seen,
        "checking": checking,
    }


def _answer(prefix: str, me: Strand | None = None) -> dict[str, Any]:
    state = _state_of(prefix)
    if state is None:
        return {"stuck": False}
    obj = _object_of(state)
    holders = _holders_here(obj)
    if not holders:
        return {"stuck": False}
    answer = _follow(holders, me)
    answer["taken"] = "; ".join(_taken_here(obj, h) for h in holders)
    pid = os.getpid()
    answer["holders"] = [f"{_stacks.describe_strand(h)} of process {pid}" for h in holders]
    return answer


def _taken_here(obj: Any, holder: Strand | None) -> str:
    """Where ``holder`` took ``obj`` (known in debug mode), else ``"?"``."""
    if holder is None or not isinstance(obj, _LockCore):
        return "?"
    return _waitfor._taken_at(obj, holder)


def _ask(tag: int, prefix: str) -> dict[str, Any] | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ASK_TIMEOUT)
    try:
        sock.connect(_address(tag))
        sock.sendall(prefix.encode("ascii") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        answer: dict[str, Any] = json.loads(data)
        return answer
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def _someone_waits_on_ours() -> bool:
    """Whether a shared object this process holds has waiters announced (a cycle through
    this process must end with a wait on one of them: else no query is worth making)."""
    me = os.getpid()
    for state in list(_xproc._states):
        if state.what == "lock":
            if _robust.tag_pid(int(state.words[_xproc.HOLDER])) != me:
                continue
        elif state.what != "semaphore" or state.slots.count() <= 0:
            continue
        table = state.table
        if any(table[d] for d in range(doorbell.DIRECTIONS)):
            return True
    return False


def check(waiter: Waiter, here: Any) -> None:
    """``waiter`` is about to wait with no time limit on a shared lock or semaphore: raise
    ``DeadlockError`` if that closes a cycle through other processes.

    A walk over (process, shared object) pairs: each process says where the strands of
    its own that hold the object wait (this one answers for itself); the wait is a
    deadlock when every strand reached is stuck and the walk passed through this strand.
    """
    ensure_responder()
    me = waiter.strand
    waits = _shared_waits
    try:
        waits.ids[me] = id(waiter)
    except TypeError:
        return
    waits.checking[me] = waiter
    try:
        if check_hook is not None:
            check_hook(waiter, "walk")
        give_up_at = time.monotonic() + DEFER_PATIENCE
        pause = 0.001
        while _check(waiter, me, here, time.monotonic() < give_up_at) is _DEFER:
            if check_hook is not None:
                check_hook(waiter, "defer")
            if not _pause(pause):  # (short: the rival's walk is a few socket round trips)
                break  # cancelled meanwhile: the park that follows raises it
            pause = min(pause * 2, 0.05)
    finally:
        waits.checking.pop(me, None)


def _pause(seconds: float) -> bool:
    """Let a rival's check go first for ``seconds``: a timed park through the kernel, so a
    cancel scope's ``cancel()`` or deadline ends it as it ends any wait (``False``)."""
    try:
        sleep(seconds)
    except Cancelled:
        return False
    return True


def _check(waiter: Waiter, me: Strand, here: Any, may_defer: bool) -> object:
    obj: Any = waiter.on
    mine = _robust.my_tag()
    todo = _exits(obj)
    if todo is None or all(tag == mine for tag, _ in todo):
        return None  # it may end by itself, or only this process holds it (seen in-process)
    if not _someone_waits_on_ours():
        return None  # nobody waits for anything of ours: no cycle comes back through us
    held_by = " and ".join(f"process {_robust.tag_pid(t)}" for t, _ in todo)
    links = [_link(me, obj, held_by, here)]
    visited: set[tuple[int, str]] = set()
    closes = False
    rivals: list[tuple[int, int]] = []
    while todo:
        tag, prefix = todo.pop(0)
        if (tag, prefix) in visited:
            continue
        visited.add((tag, prefix))
        if len(visited) > MAX_HOPS * 4:
            return None
        answer = _answer(prefix, me) if tag == mine else _ask(tag, prefix)
        if not answer or not answer.get("stuck"):
            return None  # a strand that may still move: no deadlock (yet)
        _note_holders(links, tag, prefix, answer.get("holders", ()), answer.get("taken", "?"))
        links.extend(answer["links"])
        todo.extend([int(t), str(p)] for t, p in answer["next"])
        rivals.extend((int(t), int(w)) for t, w in answer.get("checking", ()))
        closes = closes or bool(answer.get("through_me"))
    if not closes:
        return None  # a knot that does not go through this wait: it was there before
    if check_hook is not None:
        check_hook(waiter, "verdict")
    if may_defer and rivals and min(rivals) < (mine, id(waiter)):
        return _DEFER  # closing it at the same moment as a strand that goes first
    queue = waiter.queue
    with queue.mutex:
        removed = waiter.state == QUEUED and queue.remove(waiter, CANCELLED)
    if not removed:
        return None  # handed what it waited for meanwhile: no deadlock after all
    if check_hook is not None:
        check_hook(waiter, "raise")
    raise _error(links)


def _note_holders(
    links: list[list[str]], tag: int, prefix: str, holders: Any, taken: str
) -> None:
    """Name the strands of process ``tag`` that hold the object ``prefix`` (and where they
    took it, when known) on the links that wait for it."""
    process = f"process {_robust.tag_pid(tag)}"
    names = " and ".join(str(h) for h in holders)
    for link in links:
        if link[5] != prefix:
            continue
        if names:
            link[3] = " and ".join(
                names if part == process else part for part in link[3].split(" and ")
            )
        if taken and set(taken.split("; ")) != {"?"}:
            link[4] = taken if link[4] == "?" else f"{link[4]}; {taken}"


def _error(links: list[list[str]]) -> DeadlockError:
    chain: tuple[_waitfor.WaitLink, ...] = tuple(_waitfor.WaitLink(*link[:5]) for link in links)
    lines = []
    for wl in chain:
        taken = f" (taken at {wl.taken_at})" if wl.taken_at != "?" else ""
        lines.append(
            f"  {wl.strand} waits for {wl.waits_for} at {wl.waits_at}, held by "
            f"{wl.holder}{taken}"
        )
    message = (
        "deadlock across processes: these strands wait on each other forever (this wait "
        "would close the cycle, so it raises instead):\n" + "\n".join(lines)
    )
    return DeadlockError(message, chain)
