"""Doorbells: how any strand waits on an object shared with other processes.

One mechanism for every strand kind, with no thread per waiting strand and no polling. A
waiter parks through the kernel (``plait._core.parking``: a thread on its lock, a coroutine
on a future of its loop), in a wait queue of its own process, so cancel scopes, timeouts,
``tg.cancel()`` and instruments reach it as for any local wait. What crosses processes is
only *who* waits::

    shared object's segment                     process P
    ───────────────────────                     ─────────
    wait table: totals[3]                       doorbell: abstract socket "plait-bell-<pid>-<start>"
      slot: P's tag, P's room id,  ──ring──►    one watcher thread reads it (8-byte records)
            parked count per direction            └► room(id).queues[d].pop().wake()
                                                      (the strand retries its operation)

Protocol (the object's own shared lock held on both sides, see ``robust.RobustLock``):

* a waiter that cannot proceed enqueues itself in its process's :class:`Room` for the object
  and *announces* itself: its slot's count for that direction and the table's total go up;
  then it releases the lock and parks;
* a waker that makes progress possible (an item put, room made, the last task done)
  calls :func:`wake` while the lock is held: when the total is not zero, it takes one
  announcement of one process (round robin over slots) and rings that process's bell with
  the room's id and the direction;
* the process's watcher pops one local waiter of that room and direction and wakes it; if
  none is left (it timed out meanwhile), it passes the ring on (:meth:`Room.pass_on`);
* a waiter that leaves without being woken takes its announcement back -- unless a ring
  already took it: then the watcher, finding nobody queued, passes that ring on. A waiter
  woken and then cancelled passes its ring on too. So a wake-up is never lost.

Which announcement a ring took. The table counts announcements per process, not per
waiter, so the room keeps, per direction, the set of its waiters whose announcement no ring
has taken yet (:attr:`Room.announced`). A ring takes a queued waiter's (it wakes it) or, if
none is queued, one of a waiter's that is leaving (timed out, cancelled: out of the queue,
not yet withdrawn) -- and the leaver then withdraws nothing. Without that, a leaver that
withdrew after its ring had come and gone would take back a *newer* waiter's announcement,
and that waiter would sleep next to a free lock for good.

Dead processes. A ring to a process that died fails at once (connection refused, or
``EPIPE`` on a connection made earlier): its slot
is cleared, its counts leave the totals, and the ring goes to the next process. A process
killed *inside* the lock may have taken an announcement without ringing: the lock's repair
calls :func:`wake_everyone`, and every live process's waiters on the object look again.

A process's bell is made on its first wait on a shared object and goes when its last room
does (the object collected). It is a Linux abstract-namespace socket: no file, so nothing is
left behind by a killed process. Ringers keep one connection per process they ring; a
bell that closes shuts those connections for reading before its address is free again, so
a ring meant for the process's next bell either fails over to it (``EPIPE``) or, sent
before, is read by the closing watcher and delivered (room ids are unique per process).

A process that lets an object go and lives on (a warm pool worker) frees its slot: a
ring for it would reach a bell without the room, which cannot hand it on. The object's
finalizer hands the room to the bell's watcher (:func:`retire_later`: it never blocks),
which clears the slot under the object's lock and, if a ring may have been on its way
there for nobody, has every other waiter look again (:meth:`Room.retire`). Nothing is
retired while the process exits: its slot goes with it.

More than :data:`SLOTS` processes waiting on one object at once: the process without a slot
parks with a short timeout and looks again (documented fallback, never a lost wake-up).

Holders that die outside the lock. A shared primitive's holder (a lock's, a semaphore's
permits) can die while it holds the *user-level* object, outside the shared lock: nobody
rings then. A waiter names the holder to its bell (:meth:`Room.watch`): the watcher adds the
holder's ``pidfd`` (``os.pidfd_open``) to what it waits on, and when that process exits it
wakes every waiter of the room's direction with :data:`DIED` (they look again, find the
holder dead and repair). Where pidfds are not available the waiter parks in bounded slices.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import os
import queue
import selectors
import socket
import sys
import threading
import time
import weakref
from typing import Any

from plait._core.parking import (
    CANCELLED,
    QUEUED,
    WOKEN,
    Waiter,
    WaitQueue,
    async_park,
    new_mutex,
    park,
)
from plait._ipc import shm

__all__ = [
    "DIED",
    "DIRECTIONS",
    "SLOTS",
    "TABLE_BYTES",
    "Room",
    "bell_address",
    "waiting",
    "wake",
    "wake_all",
    "wake_everyone",
]

DIRECTIONS = 3  # a queue's getters, putters and joiners (other objects use what they need)
SLOTS = 64  # processes that can wait on one object at the same time
_W = 8  # words per slot: tag, room id, counts[DIRECTIONS], spare
_TAG, _ROOM, _COUNT0 = 0, 1, 2
_TOTALS = 8  # words before the first slot: totals[DIRECTIONS], next slot to ring, spare
_NEXT = DIRECTIONS
TABLE_WORDS = _TOTALS + SLOTS * _W
TABLE_BYTES = TABLE_WORDS * 8
_ALL = 4  # a record's flag: wake every waiter of the direction (close, repair)
_NO_SLOT_RECHECK = 0.01  # the no-slot fallback's look-again period
_MAX_WRITERS = 256  # connections to other processes' bells kept open at most
_START_MASK = (1 << 40) - 1
_MAX_WATCHED = 1024  # processes one bell watches for exit at most (then: bounded slices)
_pidfd_open = getattr(os, "pidfd_open", None)

#: What a waiter is handed when a process it waited on (a holder) exited.
DIED: Any = type("Died", (), {"__repr__": lambda self: "<died>"})()

#: What :meth:`Room.watch` answers.
WATCHING, UNWATCHED, GONE = 0, 1, 2


def _tag_of(pid: int, start: int) -> int:
    return pid << 40 | (start & _START_MASK)


def bell_address(pid: int, start: int) -> str:
    """Process (``pid``, ``start``)'s doorbell: a Linux abstract socket address (no file:
    it vanishes with the process, even a killed one)."""
    return f"\0plait-bell-{pid}-{start & _START_MASK}"


_BIND_PATIENCE = 2.0  # seconds a bell waits for a just-forked child to let go of its address


def _bind(listener: socket.socket, address: str) -> None:
    """Bind this process's bell address. A child forked a moment ago may still hold the
    previous bell's listener (it closes its copy in its after-fork hook, which may not have
    run yet): wait for it a little, then say what holds the address."""
    deadline = time.monotonic() + _BIND_PATIENCE
    while True:
        try:
            listener.bind(address)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                exc.add_note(
                    "plait: another process holds this process's doorbell address (a child "
                    "forked without running Python's after-fork hooks keeps it)"
                )
                raise
            time.sleep(0.005)


class _Bell:
    """This process's doorbell: a listening socket read by one watcher thread; the rooms it
    serves."""

    def __init__(self) -> None:
        pid, start = shm.my_tag()
        self.tag = _tag_of(pid, start)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _bind(self.listener, bell_address(pid, start))
            self.listener.listen(128)
        except BaseException:
            self.listener.close()
            raise
        self.pid = os.getpid()  # (a forked child's copy is not its bell)
        self.stop_r, self.stop_w = os.pipe()  # b"x": stop; b"r": rooms to retire
        # A finalizer writes b"r" (``retire_later``): it must never block, and the write
        # end lives as long as this object (never a closed, reused descriptor).
        os.set_blocking(self.stop_w, False)
        self._close_w = weakref.finalize(self, os.close, self.stop_w)
        self._close_w.atexit = False  # (at exit the kernel closes it, after every writer)
        self.retiring: queue.SimpleQueue[tuple[object, Room, bool]] = queue.SimpleQueue()
        self.retire_asked = False  # (a b"r" is in the pipe: at most one at a time)
        # pid -> (its pidfd, the (room id, direction) pairs to wake when it exits)
        self.watched: dict[int, tuple[int, set[tuple[int, int]]]] = {}
        self.watch_lock = threading.Lock()
        self.closed = False
        self.ended = False  # (the watcher has closed the pipe: a fork must not close it)
        # ringers' connections -> their partial record (the watcher's; a fork copies it)
        self.conns: dict[socket.socket, bytes] = {}
        # ``conn_lock`` orders accepting a connection before :meth:`close` shuts them all
        self.conn_lock = threading.Lock()
        self.closing = False
        # the rooms this bell keeps alive (delivery goes through the process's ``_rooms``)
        self.rooms: weakref.WeakValueDictionary[int, Room] = weakref.WeakValueDictionary()
        # Registered before the watcher starts: a bell closed at once (its last room gone)
        # must not leave the watcher registering a closed socket.
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.selector.register(self.stop_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._watch, name="plait-doorbell", daemon=True)
        self.thread.start()

    def register(self, room: Room) -> int:
        """(``_bell_lock`` held) Serve ``room``; its id (unique in this process: a ring
        that reaches an earlier bell of this process is still delivered, see :meth:`close`)."""
        rid = next(_room_ids)
        self.rooms[rid] = room
        _rooms[rid] = room
        weakref.finalize(room, _forget, self, rid)
        return rid

    def _watch(self) -> None:
        sel = self.selector
        pending = self.conns
        try:
            while True:
                for key, _ in sel.select():
                    obj = key.fileobj
                    if obj == self.stop_r:
                        asked = os.read(self.stop_r, 512)
                        if b"r" in asked:
                            self._retire()
                        if b"x" in asked:
                            self._drain()
                            return
                        continue
                    if key.data is not None:  # a watched process exited
                        try:
                            self._exited(key.data)
                        except Exception:  # (the bell serves every room: it goes on)
                            pass
                        continue
                    if obj is self.listener:
                        with self.conn_lock:
                            try:
                                if self.closing:
                                    raise OSError("closed")
                                conn, _addr = self.listener.accept()
                            except OSError:  # (closed: the stop record is on its way)
                                sel.unregister(obj)
                                continue
                            pending[conn] = b""
                        sel.register(conn, selectors.EVENT_READ, None)
                        continue
                    assert isinstance(obj, socket.socket)
                    try:
                        data = obj.recv(8192)
                    except OSError:
                        data = b""
                    if not data:  # that ringer is gone (a partial record goes with it)
                        sel.unregister(obj)
                        obj.close()
                        del pending[obj]
                        continue
                    data = pending[obj] + data
                    usable = len(data) - len(data) % 8
                    for i in range(0, usable, 8):
                        self._deliver(int.from_bytes(data[i : i + 8], "little"))
                    pending[obj] = data[usable:]
        finally:
            self.ended = True
            for conn in pending:
                conn.close()
            with self.watch_lock:
                self.closed = True
                for fd, _pairs in self.watched.values():
                    os.close(fd)
                self.watched.clear()
            sel.close()
            self.listener.close()
            os.close(self.stop_r)  # (the write end goes with this object: ``_close_w``)

    def watch(self, pid: int, rid: int, d: int) -> int:
        """Wake room ``rid``'s direction ``d`` with :data:`DIED` when ``pid`` exits:
        ``WATCHING``, ``UNWATCHED`` (no pidfd here: the caller parks in slices) or
        ``GONE`` (no such process any more)."""
        with self.watch_lock:
            entry = self.watched.get(pid)
            if entry is not None:
                entry[1].add((rid, d))
                return WATCHING
            if _pidfd_open is None or self.closed or len(self.watched) >= _MAX_WATCHED:
                return UNWATCHED
            try:
                fd = _pidfd_open(pid)
            except ProcessLookupError:
                return GONE
            except OSError:
                return UNWATCHED
            self.watched[pid] = (fd, {(rid, d)})
            try:
                self.selector.register(fd, selectors.EVENT_READ, pid)
            except (OSError, ValueError, KeyError):  # pragma: no cover - closing meanwhile
                del self.watched[pid]
                os.close(fd)
                return UNWATCHED
        return WATCHING

    def _exited(self, pid: int) -> None:
        with self.watch_lock:
            entry = self.watched.pop(pid, None)
            if entry is None:
                return
            fd, rooms = entry
            self.selector.unregister(fd)
            os.close(fd)
        for rid, d in rooms:
            room = _rooms.get(rid)
            if room is not None:
                try:
                    room.died(d)
                except Exception:  # a broken object must not stop the bell
                    pass

    def _retire(self) -> None:
        """(The watcher) Retire the rooms whose objects this process let go (see
        :meth:`Room.retire`): here, not in the collector's finalizer, which may run on a
        thread that holds a lock this needs. Not once the interpreter is finalizing: a
        daemon thread is frozen where it stands then, and one frozen holding an object's
        lock would leave it to a repair (which an ordered queue cannot survive)."""
        self.retire_asked = False  # (before the queue is emptied: a later put asks again)
        while True:
            try:
                owner, room, hand_on = self.retiring.get_nowait()
            except queue.Empty:
                return
            if not (self.closing or sys.is_finalizing()):
                try:
                    room.retire(hand_on)
                except Exception:  # (a broken object must not stop the bell)
                    pass
            del owner, room  # (now it goes)

    def _drain(self) -> None:
        """(The watcher, stopping) Deliver the records ringers sent before :meth:`close`
        shut the connections: they may be for a room of this process's next bell."""
        for conn, partial in self.conns.items():
            data = partial
            conn.setblocking(False)
            while True:
                try:
                    chunk = conn.recv(8192)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
            for i in range(0, len(data) - len(data) % 8, 8):
                self._deliver(int.from_bytes(data[i : i + 8], "little"))

    def _deliver(self, record: int) -> None:
        # (a function of its own: the watcher's frame must not keep a room alive)
        room = _rooms.get(record >> 3)
        if room is not None:
            try:
                room.deliver(record & 3, bool(record & _ALL))
            except Exception:  # a broken object must not stop the bell
                pass

    def drop_inherited(self) -> None:
        """(In a forked child) Close this process's copies of the parent's bell: a fork
        copies every descriptor, close-on-exec or not, and a child holding the listener
        keeps the parent's address bound: the parent's next bell could not bind it
        (``EADDRINUSE``) for as long as the child lives (a Manager's server, a worker)."""
        for conn in self.conns:
            conn.close()
        self.selector.close()
        self.listener.close()
        if not self.ended:  # (else the watcher closed it: its number may be reused)
            os.close(self.stop_r)
        self._close_w()  # (this process's copy; once)

    def close(self) -> None:
        """Free the address now (a new bell may bind it at once) and stop the watcher.

        A ringer may still hold a connection to this bell and ring, through it, a room of
        this process's *next* bell: every connection is shut for reading first, so that
        a send after this fails (``EPIPE``: the ringer connects again, to the new bell)
        and one before it is read and delivered by the stopping watcher -- never lost in a
        socket nobody reads."""
        with self.conn_lock:
            self.closing = True
            for conn in list(self.conns):
                try:
                    conn.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
            self.listener.close()
        try:
            os.write(self.stop_w, b"x")
        except OSError:
            pass


_bell: _Bell | None = None
# Every room of this process by id, whichever bell serves it (a WeakValueDictionary ``get``
# is safe from the watcher threads without a lock).
_rooms: weakref.WeakValueDictionary[int, Room] = weakref.WeakValueDictionary()
_room_ids = itertools.count(1)
# (re-entrant: making a room's finalizer may collect another room, whose finalizer takes it)
_bell_lock = threading.RLock()
_writers: dict[int, socket.socket] = {}  # tag -> a connection to that process's bell
_writers_lock = threading.Lock()


def _attach(room: Room) -> tuple[_Bell, int]:
    """This process's bell (made on first use) and ``room``'s id in it."""
    global _bell
    with _bell_lock:
        while True:
            b = _bell
            if b is None or not b.thread.is_alive():  # (a watcher that ended rings no room;
                b = _bell = _Bell()  # it closed its own sockets and pipe on the way out)
            rid = b.register(room)
            if _bell is b:
                return b, rid
            # The garbage collector ran a collected room's finalizer inside register(), on
            # this thread (the lock is re-entrant): it was the bell's last room, so it closed
            # the bell before ours was in it. Attach to a new one instead.
            b.rooms.pop(rid, None)
            _rooms.pop(rid, None)


def _wake_all(woken: list[Waiter]) -> None:
    """Wake each of ``woken`` (popped already): one that fails must not leave the others
    asleep, nor stop the bell's watcher that calls this."""
    error: Exception | None = None
    for w in woken:
        try:
            w.wake()
        except Exception as exc:
            error = exc
    if error is not None:
        raise error


def _forget(bell: _Bell, rid: int) -> None:
    """A room was collected; the last one takes the bell with it (a process that no longer
    waits on anything shared keeps no socket and no thread). Not while the interpreter is
    finalizing: the lock may be held for good by a frozen daemon thread (the watcher
    dropping a room it retired), and the process's socket and thread end with it."""
    global _bell
    if sys.is_finalizing():
        return
    with _bell_lock:
        bell.rooms.pop(rid, None)
        if bell.rooms or _bell is not bell:
            return
        _bell = None
        bell.close()  # (under the lock: the next bell can bind the address at once)


def _close_writers() -> None:
    for conn in _writers.values():
        conn.close()
    _writers.clear()


def _at_exit() -> None:
    with _writers_lock:
        _close_writers()


atexit.register(_at_exit)


def _after_fork() -> None:
    global _bell, _bell_lock, _writers_lock
    bell, _bell = _bell, None  # the parent's bell and watcher are the parent's
    _bell_lock = threading.RLock()
    _writers_lock = threading.Lock()
    _close_writers()
    if bell is not None:
        bell.drop_inherited()


os.register_at_fork(after_in_child=_after_fork)


def _ring(tag: int, record: int) -> bool:
    """Send one record to process ``tag``'s bell; ``False`` if that process is gone."""
    data = record.to_bytes(8, "little")
    with _writers_lock:
        for _attempt in range(2):
            conn = _writers.get(tag)
            if conn is None:
                if len(_writers) >= _MAX_WRITERS:  # mostly processes gone by now: start over
                    _close_writers()
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    conn.connect(bell_address(tag >> 40, tag & _START_MASK))
                except OSError:  # refused, or no such address: the process is gone
                    conn.close()
                    return False
                conn.setblocking(False)
                _writers[tag] = conn
            try:
                conn.send(data)
                return True
            except BlockingIOError:
                return True  # 200 KB of records unread: its watcher is far behind, not gone
            except OSError:
                # that bell closed: the process died, or stopped waiting on shared objects
                # (and may have a new bell by now): connect once more
                del _writers[tag]
                conn.close()
    return False


# -- the shared side: called with the object's shared lock held ----------------------------


def _who(table: Any, base: int) -> int:
    return int(table[base + _TAG])


def _clear_slot(table: Any, base: int) -> None:
    for d in range(DIRECTIONS):
        table[d] -= table[base + _COUNT0 + d]
        table[base + _COUNT0 + d] = 0
    table[base + _ROOM] = 0
    table[base + _TAG] = 0


def wake(table: Any, d: int) -> bool:
    """Ring one process that has a strand parked in direction ``d`` (lock held); ``False``
    if nobody waits. Call it only when ``table[d]`` is not zero (the fast check)."""
    start = int(table[_NEXT])
    for k in range(SLOTS):
        i = (start + k) % SLOTS
        base = _TOTALS + i * _W
        if table[base + _COUNT0 + d] <= 0:
            continue
        table[base + _COUNT0 + d] -= 1
        table[d] -= 1
        if _ring(_who(table, base), int(table[base + _ROOM]) << 3 | d):
            table[_NEXT] = (i + 1) % SLOTS
            return True
        table[base + _COUNT0 + d] += 1
        table[d] += 1
        _clear_slot(table, base)  # that process is dead
    table[d] = 0  # nobody is left: counts of the dead are gone
    return False


def wake_all(table: Any, d: int) -> None:
    """Ring every process with a strand parked in direction ``d`` to wake them all."""
    for i in range(SLOTS):
        base = _TOTALS + i * _W
        n = table[base + _COUNT0 + d]
        if n <= 0:
            continue
        table[base + _COUNT0 + d] = 0
        table[d] -= n
        record = int(table[base + _ROOM]) << 3 | d | _ALL
        if not _ring(_who(table, base), record):
            _clear_slot(table, base)
    table[d] = 0


def wake_everyone(table: Any) -> None:
    """After a holder died inside the lock: every live process's waiters look again (the
    dead one may have taken an announcement without ringing)."""
    for i in range(SLOTS):
        base = _TOTALS + i * _W
        tag = int(table[base + _TAG])
        if not tag:
            continue
        room = int(table[base + _ROOM]) << 3 | _ALL
        alive = all(_ring(tag, room | d) for d in range(DIRECTIONS))
        if alive:
            for d in range(DIRECTIONS):
                table[d] -= table[base + _COUNT0 + d]
                table[base + _COUNT0 + d] = 0
        else:
            _clear_slot(table, base)
    for d in range(DIRECTIONS):
        table[d] = max(int(table[d]), 0)


# -- this process's side -------------------------------------------------------------------


class Room:
    """This process's strands parked on one shared object (one per object per process).

    ``table`` is the object's wait table (a ``q``-cast view of :data:`TABLE_BYTES`);
    ``lock`` is its shared lock (``acquire``/``release``), taken here only to withdraw an
    announcement or pass a ring on.
    """

    __slots__ = (
        "__weakref__",
        "announced",
        "bell",
        "id",
        "lock",
        "mutex",
        "queues",
        "slot",
        "table",
        "unsure",
    )

    def __init__(self, table: Any, lock: Any) -> None:
        self.table = table
        self.lock = lock
        self.mutex = new_mutex()
        self.queues = [WaitQueue(self.mutex) for _ in range(DIRECTIONS)]
        # per direction: the waiters whose announcement is in the table still (``mutex``)
        self.announced: list[set[Waiter]] = [set() for _ in range(DIRECTIONS)]
        self.bell, self.id = _attach(self)
        self.slot = -1
        # A ring may be on its way here for nobody (a waiter left unwoken, or an
        # everyone-ring came): it must be handed on if the object is let go (``retire``).
        self.unsure = False

    # -- with the shared lock held --

    def _claim(self) -> int:
        """This process's slot in the table (claimed on first use); -1 if none is free."""
        table = self.table
        tag = self.bell.tag
        slot = self.slot
        if slot >= 0:
            base = _TOTALS + slot * _W
            if table[base + _TAG] == tag and table[base + _ROOM] == self.id:
                return slot
        free = -1
        for i in range(SLOTS):
            base = _TOTALS + i * _W
            t = int(table[base + _TAG])
            if t == tag:
                rid = int(table[base + _ROOM])
                if rid == self.id:
                    self.slot = i
                    return i
                if rid not in _rooms:  # a room of ours that is gone
                    _clear_slot(table, base)
                    t = 0
            if t == 0 and free < 0:
                free = i
        if free < 0:  # full: reclaim the slot of a process that is gone
            for i in range(SLOTS):
                base = _TOTALS + i * _W
                t = int(table[base + _TAG])
                if not t or not shm.owner_alive(t >> 40, t & _START_MASK):
                    _clear_slot(table, base)
                    free = i
                    break
        if free < 0:
            return -1
        base = _TOTALS + free * _W
        with self.mutex:  # (a slot lost to a sweep: our announcements are made again)
            counts = [len(announced) for announced in self.announced]
        for d in range(DIRECTIONS):
            table[base + _COUNT0 + d] = counts[d]
            table[d] += counts[d]
        table[base + _ROOM] = self.id
        table[base + _TAG] = tag
        self.slot = free
        return free

    def enqueue(self, d: int, on: object, coroutine: bool) -> Waiter:
        """Queue the calling strand in direction ``d`` and announce it (lock held)."""
        queue = self.queues[d]
        slot = self._claim()
        with self.mutex:
            waiter = queue.async_enqueue_current(on) if coroutine else queue.enqueue_current(on)
            if slot >= 0:
                self.announced[d].add(waiter)
        if slot >= 0:
            self.table[_TOTALS + slot * _W + _COUNT0 + d] += 1
            self.table[d] += 1
            waiter.data = False  # announced
        else:
            waiter.data = True  # no slot: it looks again now and then
        return waiter

    def take_back(self, waiter: Waiter, d: int) -> bool:
        """``waiter`` leaves unwoken (out of the queue already, or never to be rung): take
        its announcement back (lock held) -- unless a ring took it meanwhile, which the
        watcher then passed on. ``True`` if it was taken back."""
        with self.mutex:
            announced = self.announced[d]
            if waiter not in announced:
                return False
            announced.discard(waiter)
        slot = self.slot
        if slot < 0:
            return True
        table = self.table
        at = _TOTALS + slot * _W
        if table[at + _TAG] == self.bell.tag and table[at + _COUNT0 + d] > 0:
            table[at + _COUNT0 + d] -= 1
            table[d] -= 1
        return True

    # -- without it --

    def _settle(self, waiter: Waiter, d: int, handed: list[bool]) -> None:
        died = waiter.value is DIED  # (woken by a watched exit, not by a ring)
        if waiter.state == WOKEN and not handed and not died:
            return
        self.unsure = True
        lock = self.lock
        lock.acquire()
        try:
            if handed and not died:  # woken, then cancelled: the ring goes on
                if self.table[d]:
                    wake(self.table, d)
            else:
                self.take_back(waiter, d)
        finally:
            lock.release()

    def park(self, waiter: Waiter, d: int, timeout: float | None) -> bool:
        """Park the calling thread; ``True`` if a ring woke it (it then tries again)."""
        handed: list[bool] = []
        capped = bool(waiter.data) and (timeout is None or timeout > _NO_SLOT_RECHECK)
        try:
            woken = park(waiter, _NO_SLOT_RECHECK if capped else timeout, handed.append)
        except BaseException:
            self._settle(waiter, d, handed)
            raise
        if not woken or waiter.value is DIED:
            self._settle(waiter, d, handed)
        return woken or capped  # (no slot: look again, as if rung)

    async def async_park(self, waiter: Waiter, d: int, timeout: float | None) -> bool:
        """Park the calling coroutine; ``True`` if a ring woke it (it then tries again)."""
        handed: list[bool] = []
        capped = bool(waiter.data) and (timeout is None or timeout > _NO_SLOT_RECHECK)
        try:
            woken = await async_park(waiter, _NO_SLOT_RECHECK if capped else timeout, handed.append)
        except BaseException:
            self._settle(waiter, d, handed)
            raise
        if not woken or waiter.value is DIED:
            self._settle(waiter, d, handed)
        return woken or capped  # (no slot: look again, as if rung)

    def deliver(self, d: int, everyone: bool) -> None:
        """A ring arrived (the watcher thread): wake one local waiter, or pass it on."""
        queue = self.queues[d]
        announced = self.announced[d]
        taken = everyone
        with self.mutex:
            if everyone:  # (the ringer took every announcement of ours)
                self.unsure = True
                woken = queue.pop_all(True)
                announced.clear()
            else:
                woken = []
                while not taken:  # the first announced waiter (one without a slot that
                    w = queue.pop(True)  # polls anyway is woken on the way, harmlessly)
                    if w is None:
                        break
                    woken.append(w)
                    if w in announced:
                        announced.discard(w)
                        taken = True
                if not taken:
                    for w in announced:  # a leaver's, which then withdraws nothing
                        if w.state != QUEUED:
                            announced.discard(w)
                            break
        _wake_all(woken)
        if not taken:
            self.pass_on(d)

    def died(self, d: int) -> None:
        """A process watched for direction ``d`` exited (the watcher): every local waiter
        of ``d`` looks again (each withdraws its own announcement, see ``_sync._xproc``)."""
        with self.mutex:
            woken = self.queues[d].pop_all(DIED)
        _wake_all(woken)

    def watch(self, pid: int, d: int) -> int:
        """Have this room's waiters in ``d`` woken when process ``pid`` exits (see
        :meth:`_Bell.watch`)."""
        return self.bell.watch(pid, self.id, d)

    def abandon(self, waiter: Waiter, d: int) -> None:
        """A waiter enqueued (announced) leaves without parking: withdraw it, or pass on a
        ring that already took it (call without the lock)."""
        with self.mutex:
            removed = self.queues[d].remove(waiter, CANCELLED)
        self.unsure = True
        self.lock.acquire()
        try:
            if not self.take_back(waiter, d) and not removed and self.table[d]:
                wake(self.table, d)  # a ring woke it: it goes on
        finally:
            self.lock.release()

    def pass_on(self, d: int) -> None:
        """Hand a ring nobody here took to the next announced waiter (any process)."""
        self.lock.acquire()
        try:
            if self.table[d]:
                wake(self.table, d)
        finally:
            self.lock.release()

    def may_owe_a_ring(self) -> bool:
        """Whether a ring may still come here for nobody once the object is let go: a
        waiter left unwoken or an everyone-ring came (``unsure``), or the slot still
        counts announcements (read without the lock: with no waiter left here they only
        go down)."""
        if self.unsure:
            return True
        slot = self.slot
        if slot < 0:
            return False
        at = _TOTALS + slot * _W + _COUNT0
        table = self.table
        return any(table[at + d] for d in range(DIRECTIONS))

    def retire(self, hand_on: bool) -> None:
        """(The watcher) The object was let go here while this process's bell lives on:
        free its slot, so that no ring comes for a room that is gone (the bell could not
        hand it on: it has neither the table nor the lock). A ring already on its way
        here for nobody is lost with the room: every waiter elsewhere looks again."""
        slot = self.slot
        if slot < 0:
            return
        lock, table = self.lock, self.table
        lock.acquire()
        try:
            base = _TOTALS + slot * _W
            if table[base + _TAG] == self.bell.tag and table[base + _ROOM] == self.id:
                _clear_slot(table, base)
            self.slot = -1
            if self.unsure and hand_on:
                for d in range(DIRECTIONS):
                    if table[d] > 0:
                        wake_all(table, d)
        finally:
            lock.release()


def retire_later(owner: object, room: Room, hand_on: bool) -> None:
    """(``owner.__del__``: any thread, any moment) ``owner``, the object's state here, is
    being collected: have the bell's watcher retire its ``room`` (:meth:`Room.retire`),
    with ``owner`` kept alive until then (the room's lock repairs through it). ``hand_on``:
    a ring is a wake-up to look again, not a notification that may be consumed (a
    Condition's).

    It never blocks and takes no lock: a finalizer runs on whichever thread the collector
    interrupts, which may hold any lock, and at exit on a thread whose peers (the watcher)
    may be frozen holding theirs. So it does nothing when the interpreter is finalizing
    or exiting (the process is ending: its slot goes with it; a watcher stopped inside an
    object's lock would leave it to a repair), in a forked child (the room and its bell
    are the parent's), or when no ring can be on its way here for nobody."""
    if room.slot < 0 or sys.is_finalizing():
        return
    bell = room.bell
    if bell.pid != os.getpid() or bell.closing or not room.may_owe_a_ring():
        return  # (closing with a room alive: the process is exiting, see ``_forget``)
    bell.retiring.put((owner, room, hand_on))  # (SimpleQueue: safe from a finalizer)
    if not bell.retire_asked:
        bell.retire_asked = True
        try:
            os.write(bell.stop_w, b"r")  # (non-blocking; the watcher may have ended)
        except OSError:
            pass


def waiting(table: Any, d: int) -> int:
    """How many strands (all processes) are announced in direction ``d`` now."""
    return int(table[d])
