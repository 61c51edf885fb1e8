"""The shared log behind plait.shared's dict, list and Value: no server process.

Why a log. ``multiprocessing.Manager`` keeps the state in a server process and pays a
socket round trip per operation (~140 µs). Shared-memory dicts that keep a hash table in
shared memory (``UltraDict``, ``shared-memory-dict``) make every read decode a value from
shared memory, have a fixed size, and a writer killed half-way leaves a torn table. Here the
shared state is an *append-only log* of records (``pickle`` of ``(op, args...)``, each framed
by its length) and one 64-bit *published word* ``(generation << 40) | committed offset``:

* Every process keeps a local replica (a plain ``dict`` or ``list``) and the word it has
  replayed up to. A read costs one load of the shared word: unchanged, the local replica
  answers (~0.3 µs); changed, the new records are replayed first (``_catch_up``).
* A writer takes the object's shared :class:`plait.Lock` (robust: a holder's death frees
  it), replays what it missed, appends its record past the committed offset, applies it
  locally and stores the new word -- last, in one aligned 8-byte store. A writer killed
  before that store leaves a record nobody will ever read (the next writer writes over
  it): every update is applied or not, never torn, with no repair to run.
* ``with d.locked():`` (and ``update_with``) holds that lock across several operations and
  publishes once, at the end: a process killed inside the block leaves none of its writes
  visible.
* When a log segment is full, the writer *compacts*: it writes one snapshot record of the
  live state into a new segment of the next generation (twice the live size, no fixed
  limit; deleted entries and overwritten values are reclaimed), publishes the word, and
  unlinks the old name (readers still replaying it keep their mapping). A reader that sees
  a new generation maps it and replays it from its snapshot.

* The uncontended write (``_commit_under_mutex``) does not take the lock at all: it holds
  the lock's robust mutex (one trylock, one unlock) while it appends, applies and
  publishes, when nobody holds the lock and the record fits; anything else takes the lock.

Values of mutable types are kept pickled in the replica and unpickled on each read, so
``d[k]`` returns a fresh copy as the Manager's proxies do (mutating it changes nothing
shared); ``int``, ``float``, ``str``, ``bytes``, ``bool``, ``None`` are kept as objects.
A value of a dict, list, Value or Namespace whose pickle is over ``BIG`` (64 KiB) gets a segment
of its own (``<prefix>v<pid>_<n>``) and the log records its name: every replica maps it as
it replays the record, and the writer whose published record overwrites or deletes it
unlinks the name (mappings stay valid; a replica that replays the record after the unlink
finds the newer record next). A writer killed before publishing leaves its segment under
the prefix: the next compaction removes it (its pid is dead, no record names it), and the
last user to let go removes every name under the prefix anyway.

Memory order: readers load the word without a lock and then read the records below it;
the writer stores the records first and the word last. On x86 (TSO: stores become visible
in program order, loads are not reordered with later loads) a memoryview's plain 8-byte
load and store keep that order, so the word is read through one (``_word_view``). On a
weakly ordered CPU (arm64, POWER, RISC-V) nothing in Python orders them: there the word is
a ``plait.shared._ordered.Word`` (C: an acquire load, a release store) and, where that
module was not built, creating or attaching a shared object raises ``RuntimeError``
rather than risk reading a record before it is written.

Lifetime: every name carries the creator's owner tag (``shm.new_prefix``); the anchor
segment (``<prefix>ring``: the word) is held by every process attached and the last one to
let go removes every name under the prefix; names of killed processes are swept as queues'
are (``shm.sweep_dead``).
"""

from __future__ import annotations

import os
import pickle
import platform
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from plait._core import current_strand
from plait._errors import BrokenResourceError, ClosedError
from plait._ipc import serialize, shm
from plait._ipc.promotion import promote
from plait._ipc.robust import _trylock, _unlock
from plait._sync import Lock
from plait._sync._xproc import defer_in

__all__ = ["Blob", "Block", "LogBacked", "encode", "load", "store"]

ANCHOR = shm.ANCHOR  # "ring": the held segment of every owner-tagged name set
_OFF_BITS = 40
_OFF_MASK = (1 << _OFF_BITS) - 1
_GEN_MASK = (1 << 22) - 1
_CLOSED = -1  # the published word once the object's Manager was shut down
_UNSYNCED = -2  # a local word that matches nothing: replay from the generation's start
MIN_LOG = 64 * 1024
BIG = 64 * 1024  # a value whose pickle is larger gets a segment of its own
_BIG_STR = BIG // 4  # (a str's length in characters: up to 4 bytes each)
_FRAME = struct.Struct("<I")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_dumps = pickle.dumps
_loads = pickle.loads
_SIMPLE = frozenset({int, float, str, bytes, bool, type(None), complex})
_SCALARS = frozenset({int, float, bool, type(None), complex})  # (never large)

try:
    from plait.shared import _ordered  # type: ignore[attr-defined]
except ImportError:  # (not built: no compiler at install)
    _ordered = None
_TSO = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def _word_view(buf: memoryview) -> Any:
    """The published word at the start of ``buf``, read and written as ``w[0]`` with the
    order the log needs on this CPU (see the module doc)."""
    if _TSO:
        return buf.cast("q")
    if _ordered is not None:
        return _ordered.Word(buf)
    raise RuntimeError(
        f"plait.shared needs ordered loads and stores of its shared word on this "
        f"{platform.machine()} CPU (weakly ordered), from its C module "
        "plait.shared._ordered, which was not built here: reinstall plait with a C "
        "compiler available, or share state through plait.Queue instead"
    )


# Test hook (crash tests): called with the stage name at the points a writer can be killed.
crash_hook: Callable[[str], None] | None = None


class Blob:
    """A value kept pickled in the replica: each read unpickles a fresh copy.

    A large one (``name`` set) lives in a segment of its own and ``data`` is a view of
    its mapping: the log records only the name, and each process maps the segment when it
    replays the record (so the writer that later overwrites the value may unlink the name
    at once: every mapping stays valid until its replica lets go of it).
    """

    __slots__ = ("data", "name")

    def __init__(self, data: bytes | memoryview, name: str | None = None) -> None:
        self.data = data
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        if self.name is not None:
            return (_open_big, (self.name,))
        return (Blob, (self.data,))


class _Gone:
    """What a large value's record replays to when its segment was already removed: the
    value was overwritten or deleted later in the log (replayed next), so it is never read."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_value_gone, ())


def _value_gone() -> Any:
    raise BrokenResourceError(
        "a large value of this shared object was removed before this process could map it "
        "(its segment is gone: was /dev/shm cleaned by hand?)"
    )


_GONE = pickle.dumps(_Gone())


def _open_big(name: str) -> Blob:
    """Unpickling a large value's record: map its segment (``populate=False``: pages are
    read only when the value is)."""
    try:
        seg = shm.Segment(name, populate=False)
    except FileNotFoundError:
        return Blob(_GONE, name)
    return Blob(seg.buf, name)


def store(value: Any) -> Any:
    """What the replica and the log keep for ``value`` (``SerializationError`` if it cannot
    be pickled; nothing has changed then)."""
    if type(value) in _SIMPLE:
        return value
    try:
        return Blob(_dumps(value, 5))
    except Exception:
        return Blob(serialize.dumps(value, what="the value"))


def load(stored: Any) -> Any:
    """The value for a stored one (a fresh copy of a mutable value)."""
    if type(stored) is Blob:
        return _loads(stored.data)
    return stored


def encode(record: tuple[Any, ...]) -> bytes:
    """Pickle a record (its key may be any picklable object)."""
    try:
        return _dumps(record, 5)
    except Exception:
        return serialize.dumps(record, what="the key")


def _page_round(n: int) -> int:
    return (n + _PAGE - 1) // _PAGE * _PAGE


_known: weakref.WeakValueDictionary[str, LogBacked] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()
_kinds: dict[str, type[LogBacked]] = {}


class LogBacked:
    """The shared-log machinery; subclasses keep the replica and apply records to it."""

    kind: ClassVar[str] = ""
    __slots__ = (
        "__weakref__",
        "_anchor",
        "_depth",
        "_dropped",
        "_hdr",
        "_lock",
        "_mutex",
        "_owner",
        "_prefix",
        "_retired",
        "_seg",
        "_word",
    )

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            _kinds[cls.kind] = cls

    # -- what a subclass provides -----------------------------------------------------

    def _reset(self) -> None:
        """Empty the replica (a new generation is about to be replayed)."""
        raise NotImplementedError

    def _apply(self, record: tuple[Any, ...]) -> None:
        """Apply one record to the replica."""
        raise NotImplementedError

    def _snapshot(self) -> tuple[Any, ...]:
        """A record that rebuilds the whole replica (the first of every generation)."""
        raise NotImplementedError

    def _stored(self) -> Iterable[Any]:
        """Every stored value of the replica (to find the large ones it holds)."""
        raise NotImplementedError

    # -- creating and attaching -------------------------------------------------------

    def _create(self, fill: Callable[[], None] | None = None) -> None:
        """Make the shared names for a new object; ``fill()`` then fills the replica (it
        may store large values: they need the names). If it raises, nothing is left."""
        self._init_local()
        prefix = shm.new_prefix(self.kind)
        self._prefix = prefix
        lock = Lock()
        promote(lock)
        self._lock = lock
        self._anchor = shm.Segment(prefix + ANCHOR, 64, create=True, populate=False, hold=True)
        try:
            self._hdr = _word_view(self._anchor.buf)
            if fill is not None:
                fill()
            self._word = _UNSYNCED
            self._compact(0)
            self._publish()
        except BaseException:
            shm.let_go(prefix, self._anchor)
            raise
        shm.track(self, prefix, self._anchor)
        with _known_lock:
            _known[prefix] = self

    def _init_local(self) -> None:
        self._mutex = threading.Lock()
        self._owner: Any = None
        self._depth = 0
        self._seg: shm.Segment | None = None
        self._retired: list[shm.Segment] = []
        self._dropped: list[str] = []  # large values this writer's records let go of

    def _attach(self, prefix: str, lock: Lock) -> None:
        self._init_local()
        self._prefix = prefix
        self._lock = lock
        try:
            self._anchor = shm.Segment(prefix + ANCHOR, populate=False, hold=True)
        except FileNotFoundError:
            raise BrokenResourceError(
                f"this shared {self.kind} can no longer be used here: every process that "
                "used it has let go of it (it was removed)"
            ) from None
        try:
            self._hdr = _word_view(self._anchor.buf)
        except BaseException:
            self._anchor.let_go()
            raise
        self._word = _UNSYNCED
        self._reset()
        shm.track(self, prefix, self._anchor)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.kind, self._prefix, self._lock))

    # -- reading: catch up with the published word ------------------------------------

    def _catch_up(self) -> None:
        """Replay what other processes published since this replica was last brought up
        to date (called when the shared word differs from ours)."""
        with self._mutex:
            self._replay()

    def _replay(self) -> None:
        """(local mutex held) Bring the replica up to the published word."""
        hdr = self._hdr
        while True:
            word = hdr[0]
            if word == self._word:
                return
            if word == _CLOSED:
                raise ClosedError(
                    f"this shared {self.kind} belongs to a Manager that was shut down: "
                    "make it (or a new Manager) again"
                )
            if self._word != _UNSYNCED and self._owner is not None and self._depth:
                return  # a locked() block of this process is ahead of the word: ours is newer
            gen, end = word >> _OFF_BITS, word & _OFF_MASK
            seg = self._seg
            if self._word == _UNSYNCED or gen != self._word >> _OFF_BITS or seg is None:
                try:
                    seg = shm.Segment(f"{self._prefix}g{gen}", populate=False)
                except FileNotFoundError:
                    continue  # compacted meanwhile: read the word again
                self._drop_segment()
                self._seg = seg
                self._reset()
                off = 0
            else:
                off = self._word & _OFF_MASK
            buf = seg.buf
            unpack = _FRAME.unpack_from
            apply = self._apply
            while off < end:
                (n,) = unpack(buf, off)
                apply(_loads(buf[off + 4 : off + 4 + n]))
                off += 4 + n
            self._word = (gen << _OFF_BITS) | end
            self._dropped.clear()  # (their writers unlinked what other records let go of)

    def _drop_segment(self) -> None:
        seg, self._seg = self._seg, None
        if seg is not None:
            seg.close()

    # -- writing ----------------------------------------------------------------------

    def _begin(self) -> bool:
        """Take the writer lock (unless this strand holds it in ``locked()``) and the local
        mutex, and catch up. Returns whether ``_end`` must publish and release."""
        owner = self._owner
        if owner is not None and owner is current_strand():
            self._mutex.acquire()
            return False
        self._take_lock()
        try:
            self._mutex.acquire()
            try:
                self._replay()
            except BaseException:
                self._mutex.release()
                raise
        except BaseException:
            self._lock.release()
            raise
        return True

    def _end(self, publish: bool) -> None:
        try:
            if publish:
                self._publish()
        finally:
            self._mutex.release()
            if publish:
                self._lock.release()

    def _commit(self, record: tuple[Any, ...], data: bytes) -> None:
        """Log one encoded record and apply it to the replica: the whole write path in
        one call (the hot path of ``d[k] = v``)."""
        owner = self._owner
        if owner is not None and owner is current_strand():
            with self._mutex:
                self._append(data)
                self._apply(record)
            return
        if self._commit_under_mutex(data, record):
            return
        lock = self._lock
        try:
            lock.__enter__()
        except BrokenResourceError:
            self._take_lock()  # (a dead writer's lock: free again, the log whole)
        try:
            with self._mutex:
                if self._hdr[0] != self._word:
                    self._replay()
                self._append(data)
                self._apply(record)
                self._publish()
        finally:
            lock.__exit__(None, None, None)

    def _commit_under_mutex(self, data: bytes, record: tuple[Any, ...]) -> bool:
        """The uncontended write in one frame: hold the shared lock's robust mutex (not the
        lock itself: no holder word set and cleared, so two C calls instead of four) while
        this replica catches up with other writers' records and ours is appended, applied
        and published. Only when nobody holds the lock and the record fits; otherwise
        ``False`` and nothing written (the caller takes the lock). A process killed here
        leaves the mutex to its robust recovery and the record unpublished (the word is
        stored last), as on the slow path.
        """
        state = self._lock._shared
        addr = state.addr
        rc = _trylock(addr)
        if rc:
            state.settle(rc)  # (a dead holder's mutex: repaired, and let go)
            return False
        try:
            # the lock is held (a locked() block, or a slow writer), or a thread of ours
            # is replaying: take the lock instead
            if state.words[0] or not self._mutex.acquire(False):
                return False
            try:
                hdr = self._hdr
                if hdr[0] != self._word:
                    self._replay()  # (ClosedError once the Manager was shut down)
                word = self._word
                seg = self._seg
                off = word & _OFF_MASK
                end = off + 4 + len(data)
                if seg is None or end > seg.size:
                    return False  # (compaction: the slow path)
                buf = seg.buf
                _FRAME.pack_into(buf, off, len(data))
                buf[off + 4 : end] = data
                if crash_hook is not None:
                    crash_hook("appended")
                self._apply(record)
                self._word = new = (word & ~_OFF_MASK) | end
                if crash_hook is not None:
                    crash_hook("publish")
                hdr[0] = new
                if self._dropped:
                    self._unlink_dropped()
            finally:
                self._mutex.release()
        finally:
            _unlock(addr)
        return True

    def _take_lock(self) -> None:
        lock = self._lock
        while True:
            try:
                lock.acquire()
                return
            except BrokenResourceError:
                # A writer died holding it: its record was never published (the word is
                # stored last), so the log is whole; the lock is free again.
                continue

    def _append(self, record: bytes) -> None:
        """(writing) Append one encoded record past our offset (compacting when full)."""
        seg = self._seg
        off = self._word & _OFF_MASK
        need = 4 + len(record)
        if seg is None or off + need > seg.size:
            self._compact(need)
            seg = self._seg
            assert seg is not None
            off = self._word & _OFF_MASK
        buf = seg.buf
        _FRAME.pack_into(buf, off, len(record))
        buf[off + 4 : off + need] = record
        if crash_hook is not None:
            crash_hook("appended")
        self._word = (self._word & ~_OFF_MASK) | (off + need)

    def _compact(self, extra: int) -> None:
        """(writing) Start the next generation: a new segment holding one snapshot record
        of the replica, with room for ``extra`` more bytes and as much again."""
        if self._word != _UNSYNCED:
            self._sweep_orphans()
        snap = encode(self._snapshot())
        size = _page_round(max(MIN_LOG, 2 * (4 + len(snap) + extra)))
        gen = 1 if self._word == _UNSYNCED else ((self._word >> _OFF_BITS) + 1) & _GEN_MASK
        name = f"{self._prefix}g{gen}"
        try:
            seg = shm.Segment(name, size, create=True, populate=False)
        except FileExistsError:  # left by a writer killed before it published it
            shm._unlink(name)
            seg = shm.Segment(name, size, create=True, populate=False)
        _FRAME.pack_into(seg.buf, 0, len(snap))
        seg.buf[4 : 4 + len(snap)] = snap
        if self._seg is not None:
            self._retired.append(self._seg)
        self._seg = seg
        self._word = (gen << _OFF_BITS) | (4 + len(snap))

    def _sweep_orphans(self) -> None:
        """(writing, compacting) Remove the large-value segments of writers that died before
        publishing the record naming them (nothing else can: no record refers to them)."""
        head = self._prefix + "v"
        names = [n for n in shm._listdir() if n.startswith(head)]
        if not names:
            return
        held = {v.name for v in self._stored() if type(v) is Blob and v.name is not None}
        me = os.getpid()
        for name in names:
            if name in held:
                continue
            pid = int(name[len(head) :].split("_", 1)[0] or 0)
            if pid != me and not pid_running(pid):
                shm._unlink(name)

    def _publish(self) -> None:
        """(writing) Make our writes visible: one 8-byte store; then retire old segments."""
        if crash_hook is not None:
            crash_hook("publish")
        if self._hdr[0] == _CLOSED:
            raise ClosedError(f"this shared {self.kind} belongs to a Manager that was shut down")
        self._hdr[0] = self._word
        retired, self._retired = self._retired, []
        for seg in retired:
            seg.unlink()
            seg.close()
        if self._dropped:
            self._unlink_dropped()

    def _unlink_dropped(self) -> None:
        """(writing, just published) Remove the segments of the large values our records
        overwrote or deleted: nobody can reach them from the published state any more
        (processes that mapped them keep their mappings until they catch up)."""
        dropped, self._dropped = self._dropped, []
        for name in dropped:
            shm._unlink(name)

    def _keep(self, value: Any) -> Any:
        """What the replica and the log keep for ``value``: itself (a small immutable),
        its pickle, or -- over ``BIG`` bytes -- a segment of its own holding the pickle.
        ``SerializationError`` if it cannot be pickled; nothing has changed then."""
        t = type(value)
        if t in _SCALARS or (t in _SIMPLE and len(value) <= _BIG_STR):
            return value
        try:
            data = _dumps(value, 5)
        except Exception:
            data = serialize.dumps(value, what="the value")
        if len(data) <= BIG:
            return Blob(data)
        seg = shm.Segment.create(self._prefix + "v", len(data))
        seg.buf[: len(data)] = data
        return Blob(seg.buf, seg.name)

    def _discard(self, stored: Any) -> None:
        """``stored`` was made for a write that did not happen: remove its segment."""
        if type(stored) is Blob and stored.name is not None:
            shm._unlink(stored.name)

    def _drop(self, stored: Any) -> None:
        """A record of ours let go of ``stored``: a large value's segment goes once the
        record is published."""
        if type(stored) is Blob and stored.name is not None:
            self._dropped.append(stored.name)

    def _close_shared(self) -> None:
        """Mark the object closed for every process (its Manager was shut down)."""
        self._take_lock()
        try:
            self._hdr[0] = _CLOSED
        finally:
            self._lock.release()

    # -- atomic blocks ----------------------------------------------------------------

    def locked(self) -> Block:
        """Hold this object's lock for a block (``with d.locked():``): no other strand or
        process changes it meanwhile, and the block's writes become visible together when
        it ends (a process killed inside leaves none of them). Re-entrant for the strand
        that holds it. (A coroutine must not await inside while another coroutine of its
        loop writes to the same object: that one would wait for the lock on the loop.)"""
        return Block(self)


class Block:
    """``obj.locked()`` (and a shared Value's ``get_lock()``): the object's lock held by
    one strand, re-entrantly; its writes are published when the outermost block ends."""

    __slots__ = ("obj",)

    def __init__(self, obj: LogBacked) -> None:
        self.obj = obj

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        obj = self.obj
        me = current_strand()
        if obj._owner is me:
            obj._depth += 1
            return True
        obj._take_lock()
        try:
            with obj._mutex:
                obj._replay()
                obj._owner = me
                obj._depth = 1
        except BaseException:
            obj._lock.release()
            raise
        return True

    def release(self) -> None:
        obj = self.obj
        if obj._owner is None or obj._owner is not current_strand():
            raise RuntimeError("release of a shared object's lock this strand does not hold")
        if obj._depth > 1:
            obj._depth -= 1
            return
        try:
            with obj._mutex:
                obj._depth = 0
                obj._owner = None
                obj._publish()
        finally:
            obj._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie -- dead, not yet reaped -- does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:  # (no /proc here)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _rebuild(kind: str, prefix: str, lock: Lock) -> LogBacked:
    """Unpickle a shared object: the same object if this process has it already."""
    with _known_lock:
        obj = _known.get(prefix)
        if obj is not None:
            return obj
    cls = _kinds[kind]
    obj = cls.__new__(cls)
    obj._attach(prefix, lock)
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:
            return known
        _known[prefix] = obj
    return obj


def _after_fork_in_child() -> None:
    # A forked child inherits the objects (not pickled): their local mutexes may have been
    # held by another thread at the fork.
    for obj in list(_known.values()):
        obj._mutex = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
# A SIGTERM that lands while the fast write holds the robust mutex waits until it returns
# (what it calls too: a cancellation inside ``_apply`` would leave the replica ahead of the
# published word; nothing it calls waits).
defer_in(LogBacked._commit_under_mutex, whole_call=True)
