"""Deadlocks across processes, raised: follow the wait-for graph into the other processes.

A shared lock's holder word names the process that holds it, not the strand. So each
process that waits with no time limit on a shared object answers questions about its own
strands on a private socket (Linux abstract namespace, named by the process's tag -- pid
and start time, so a reused pid is never asked by mistake; only the same user may ask,
checked by the peer's credentials): *"the strand of yours holding the shared object X --
what does it wait for, with no time limit?"* It follows its own chain (local locks,
joins) until that chain reaches a shared object, and answers with the links it passed and
where the chain goes on: (the process holding that object, the object).

A strand about to wait with no time limit on a shared lock held by another process, while
this process holds a shared object itself, asks that process, then the next, up to
:data:`MAX_HOPS` processes; when the chain comes back to a shared object this process holds
and that object's holder here leads back to the waiting strand, the wait closes a cycle
and raises :class:`plait.DeadlockError` instead of parking, naming every strand, object and
line of every process of the cycle.

Each strand records its wait before it asks, so of two strands closing a cycle at once at
least one sees the other (both may: then both raise). A process that does not answer (it
holds the GIL, it is not plait's) leaves the wait to :mod:`._xwaitfor`'s report.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from typing import Any

from plait._core.parking import CANCELLED, QUEUED, Waiter
from plait._core.strands import Strand
from plait._errors import DeadlockError
from plait._sync import _robust, _xproc
from plait._sync._lock import _LockCore
from plait._sync._semaphore import Semaphore
from plait.diagnostics import _asleep, _stacks, _waitfor

__all__ = ["MAX_HOPS", "check", "ensure_responder"]

MAX_HOPS = 8
ASK_TIMEOUT = 0.5  # seconds: a process that does not answer by then is left out
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


def _object_of(state: Any) -> Any:
    """The local object promoted onto ``state`` (asked only on a suspected cycle)."""
    import gc

    for ref in gc.get_referrers(state):
        if isinstance(ref, (_LockCore, Semaphore)) and ref._shared is state:
            return ref
    return None


def _holder_here(obj: Any) -> Strand | None:
    """The strand of this process holding the shared lock ``obj``, when it is known."""
    if not isinstance(obj, _LockCore):
        return None
    if _robust.tag_pid(int(obj._shared.words[_xproc.HOLDER])) != os.getpid():
        return None
    return obj._holder()


def _link(strand: Strand, obj: object, holder: str, here: Any = None) -> list[str]:
    frames = _stacks.frames_of(strand, current=here)
    name = _stacks.name_of(obj, frames)
    kind = "plait." + type(obj).__name__.removeprefix("Shared")  # (the class the user made)
    what = f"{kind} {name!r}" if name else f"{kind} at {id(obj):#x}"
    where = f"{_stacks.describe_strand(strand)} of process {os.getpid()}"
    return [where, what, _stacks.site_of(_stacks.user_frame(frames)), holder, "?"]


def _follow(strand: Strand | None) -> dict[str, Any]:
    """From ``strand`` (holding what was asked about), along its untimed waits in this
    process, to the shared object where the chain leaves it: the links and where next."""
    links: list[list[str]] = []
    seen: set[Strand] = set()
    while strand is not None and strand not in seen and len(links) < 64:
        seen.add(strand)
        waiter = _waitfor.untimed_wait_of(strand)
        if waiter is None:
            return {"stuck": False}  # running, or its wait ends by itself
        obj: Any = waiter.on
        shared = getattr(obj, "_shared", None) if isinstance(obj, (_LockCore,)) else None
        if shared is not None:
            tag = int(shared.words[_xproc.HOLDER])
            if not tag:
                return {"stuck": False}
            links.append(_link(strand, obj, f"process {_robust.tag_pid(tag)}"))
            return {"stuck": True, "links": links, "next": [tag, shared.prefix]}
        holders = _waitfor._holders_of(obj)
        if holders is None or len(holders) != 1:
            return {"stuck": False}
        links.append(_link(strand, obj, _stacks.describe_strand(holders[0])))
        strand = holders[0]
    return {"stuck": False}


def _answer(prefix: str) -> dict[str, Any]:
    state = _state_of(prefix)
    if state is None:
        return {"stuck": False}
    obj = _object_of(state)
    holder = _holder_here(obj)
    answer = _follow(holder)
    answer["taken"] = _taken_here(obj, holder)
    return answer


def _taken_here(obj: Any, holder: Strand | None) -> str:
    """Where ``holder`` took ``obj`` (known in debug mode), else ``"?"``."""
    return "?" if holder is None else _waitfor._taken_at(obj, holder)


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


def _holds_a_shared_object() -> bool:
    me = os.getpid()
    for state in list(_xproc._states):
        if state.what == "lock" and _robust.tag_pid(int(state.words[_xproc.HOLDER])) == me:
            return True
    return False


def check(waiter: Waiter, here: Any) -> None:
    """``waiter`` is about to wait with no time limit on a shared lock: raise
    ``DeadlockError`` if that closes a cycle through other processes."""
    ensure_responder()
    state = waiter.on._shared  # type: ignore[attr-defined]
    tag = int(state.words[_xproc.HOLDER])
    mine = _robust.my_tag()
    if not tag or tag == mine or not _holds_a_shared_object():
        return  # free, ours, or nothing of ours anyone else could be waiting for
    me = waiter.strand
    links = [_link(me, waiter.on, f"process {_robust.tag_pid(tag)}", here)]
    prefix = state.prefix
    for _ in range(MAX_HOPS):
        answer = _ask(tag, prefix)
        if not answer or not answer.get("stuck"):
            return
        links[-1][4] = answer.get("taken", "?")  # where its holder took what we wait for
        links.extend(answer["links"])
        tag, prefix = answer["next"]
        if tag == mine:
            break
    else:
        return
    back = _state_of(prefix)
    back_obj = _object_of(back) if back is not None else None
    back_holder = _holder_here(back_obj)
    rest = _follow_to(me, back_holder)
    if rest is None:
        return
    links[-1][4] = _taken_here(back_obj, back_holder)
    links.extend(rest)
    queue = waiter.queue
    with queue.mutex:
        removed = waiter.state == QUEUED and queue.remove(waiter, CANCELLED)
    if not removed:
        return  # handed what it waited for meanwhile: no deadlock after all
    raise _error(links)


def _follow_to(me: Strand, strand: Strand | None) -> list[list[str]] | None:
    """The local links from ``strand`` (holding our shared object) back to ``me``."""
    links: list[list[str]] = []
    seen: set[Strand] = set()
    while strand is not None and strand not in seen:
        if strand is me:
            return links
        seen.add(strand)
        waiter = _waitfor.untimed_wait_of(strand)
        if waiter is None:
            return None
        holders = _waitfor._holders_of(waiter.on)
        if holders is None or len(holders) != 1:
            return None
        links.append(_link(strand, waiter.on, _stacks.describe_strand(holders[0])))
        strand = holders[0]
    return None


def _error(links: list[list[str]]) -> DeadlockError:
    for i, link in enumerate(links):  # "process N" -> the strand of N that waits next
        following = links[(i + 1) % len(links)][0]
        if link[3].startswith("process ") and following.endswith(" of " + link[3]):
            link[3] = following
    chain: tuple[_waitfor.WaitLink, ...] = tuple(_waitfor.WaitLink(*link) for link in links)
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
