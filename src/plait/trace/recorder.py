"""The recorder: an :class:`~plait.Instrument` that writes what every strand does.

Each hook appends one small tuple to a bounded ring (``deque(maxlen=capacity)``): when the
ring is full the oldest event falls out and ``dropped`` counts it, so memory never grows
without limit. A daemon thread drains the ring every ``interval`` seconds into JSON-lines
*part files* in the trace's parts folder (``out.json.parts/``), one set per process, so a
program that crashes, is killed or forks still leaves what it recorded on disk. The files
rotate: a process keeps at most about ``capacity`` events on disk, the oldest segment is
deleted (and counted as dropped) when a new one starts.

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC, one clock for every process on the
machine (Linux), so the events of parent and children line up without an offset exchange.

Part files:

* ``<pid>.meta.jsonl``: ``{"meta": ...}`` lines -- the process (pid, parent pid, t0),
  strands, objects;
* ``<pid>.events-<n>.bin``: one record per flush, a 4-byte little-endian length and a
  :mod:`marshal` blob ``(dropped so far, [(code, t_ns, sid, a, b, seq), ...])`` (codes in
  :data:`CODES`; ``seq`` numbers the events, so that a gap counts those dropped).

Channels are counted, not logged: a put or get is one increment (in the queue's own C
counters on its fast paths, see :attr:`Recorder.lane`; in a per-channel list here on the
others), and each flush (every ``interval``, and the last one when the trace stops) appends
one ``COUNTS`` sample per channel that changed -- its puts and gets so far and its depth.
The samples are cumulative, so one that falls out of a full ring loses only resolution,
never a put or a get.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import marshal
import os
import threading
import time
from collections import deque
from typing import Any

from plait._core.instruments import Instrument, hooks
from plait._core.strands import Strand, current_strand

__all__ = ["CODES", "COUNTS", "Recorder", "active_recorder"]

_now = time.monotonic_ns

TASK = "tk"
WAKE = "wk"
COUNTS = "qc"
SPAWN, START, PARK, UNPARK, EXIT, ACQUIRE, RELEASE, SEND, RECEIVE, SPAN_BEGIN, SPAN_END = (
    "sp",
    "st",
    "pk",
    "up",
    "ex",
    "ac",
    "rl",
    "sn",
    "rc",
    "sb",
    "se",
)
CODES = {
    SPAWN: "spawned",
    START: "started",
    PARK: "parked on an object (a: object id, b: its owner's strand id or null)",
    UNPARK: "unparked (a: object id, b: woken/timeout/cancelled)",
    EXIT: "exited (a: null, or the exception's type name; b: 'cancelled' or 'error')",
    ACQUIRE: "took a lock or permit (a: object id)",
    RELEASE: "gave it back (a: object id)",
    SEND: "put an item (a: channel id; traces before channel counts)",
    RECEIVE: "took an item (a: channel id; traces before channel counts)",
    COUNTS: "a channel's counts so far (sid: null; a: channel id; b: [puts, gets, depth|null])",
    SPAN_BEGIN: "a user span began (a: its name)",
    SPAN_END: "a user span ended (a: its name)",
    TASK: "a pool worker ran a task (t: its end; a: [function, items], b: its start)",
    WAKE: "woke a parked strand (a: the object it waits on, b: the woken strand's id)",
}


def _owner_sid(obj: object) -> int | None:
    """The strand holding ``obj`` when plait can tell (a lock's holder), else ``None``.

    Never raises: ``obj`` may be anything a strand waits on (a proxy whose attributes are
    remote calls, say)."""
    try:
        holder = getattr(obj, "_holder", None)
        if holder is None:
            inner = getattr(obj, "_core", None) or getattr(obj, "_backend", None)
            holder = getattr(inner, "_holder", None)
        if not callable(holder):
            return None
        owner = holder()
    except Exception:
        return None
    sid = getattr(owner, "sid", None)
    return sid if isinstance(sid, int) else None


_lane_numbers = itertools.count(1)  # every lane a new number: a queue's counts say whose


def _label(obj: object, number: int) -> str:
    name = type(obj).__name__.lstrip("_")
    try:
        own = getattr(obj, "name", None)
    except Exception:
        own = None
    if isinstance(own, str) and own and len(own) <= 40:
        return f"{name} {own!r}"
    return f"{name}#{number}"


class Recorder(Instrument):
    """Records every hook into a ring and flushes it to part files in ``parts_dir``."""

    def __init__(
        self,
        parts_dir: str,
        *,
        t0_ns: int,
        capacity: int = 200_000,
        interval: float = 0.1,
        parent_pid: int | None = None,
    ) -> None:
        if capacity < 16:
            raise ValueError(f"capacity must be at least 16 events, not {capacity!r}")
        self.parts_dir = parts_dir
        self.t0_ns = t0_ns
        self.capacity = capacity
        self.interval = interval
        self.parent_pid = parent_pid
        self.dropped = 0
        self._ring: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        self._append = self._ring.append
        self._seq = itertools.count()  # (the C queue's lane calls it as an iterator)
        self._next = self._seq.__next__
        self._expected = 0
        self._objects: dict[int, str] = {}
        self._strands: set[int] = set()
        self._meta: deque[dict[str, Any]] = deque()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._broken: str | None = None
        self._new_lane()
        self._open_process()

    def _new_lane(self) -> None:
        """Start counting channels afresh (at the start, and in a forked child).

        ``lane`` is what the C queue reads (:attr:`Instrument.lane`): ``(register, number)``.
        A queue counts its fast puts/gets itself under ``number``, after handing itself to
        ``register`` once; ``_channels`` keeps each counted channel (strongly, until the
        trace stops: a queue dropped mid-trace must still give its last counts) with the
        puts/gets counted here by the Python paths, ``_sampled`` the last sample taken."""
        self._channels: dict[int, tuple[object, list[int]]] = {}
        self._sampled: dict[int, tuple[int, int, int | None]] = {}
        self.lane_number = next(_lane_numbers)
        # (its events part: the ring's append, the sequence, the strands and objects
        # described so far -- the C queue records a park, unpark or wake of theirs itself)
        self.lane = (self._count_channel, self.lane_number, self._append, self._seq,
                     self._strands, self._objects)  # fmt: skip

    # -- files -------------------------------------------------------------------------

    def _open_process(self) -> None:
        """Start this process's part files (again after a fork: the child's own)."""
        self.pid = os.getpid()
        self._segment = 0
        self._segment_events = 0
        self._segments: deque[tuple[str, int]] = deque()
        self._meta.append(
            {
                "meta": "process",
                "pid": self.pid,
                "ppid": self.parent_pid,
                "t0_ns": self.t0_ns,
                "clock": "CLOCK_MONOTONIC",
            }
        )

    def _path(self, what: str) -> str:
        ext = "jsonl" if what == "meta" else "bin"
        return os.path.join(self.parts_dir, f"{self.pid}.{what}.{ext}")

    def start(self) -> None:
        """Start the flusher thread."""
        self._stop.clear()
        self._flusher = threading.Thread(
            target=self._flush_loop, name=f"plait-trace-flush-{self.pid}", daemon=True
        )
        self._flusher.start()

    def stop(self) -> None:
        """Stop the flusher and write what is left (safe to call twice)."""
        self._stop.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=5.0)
        self._flusher = None
        self.flush()
        self._channels.clear()  # (their last counts are written: let the queues go)

    def forked(self) -> None:
        """In a forked child: drop the parent's unflushed events, record into own files."""
        self._ring.clear()
        self._expected = self._next()  # what the parent recorded before the fork is not ours
        self._meta.clear()
        self._strands = set()
        self._objects = {}
        self._new_lane()  # a new number: the queues' counts from the parent are not ours
        hooks.relane()
        self.parent_pid = self.pid
        self._flush_lock = threading.Lock()
        self._open_process()
        self.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Write the ring and new metadata to the part files (never raises)."""
        with self._flush_lock:
            if self._broken is not None or self.pid != os.getpid():
                return
            try:
                self._write()
            except OSError as exc:  # the parts folder went away: stop writing, say why
                self._broken = f"{type(exc).__name__}: {exc}"

    def _sample_channels(self) -> None:
        """Append a ``COUNTS`` sample for each channel whose counts changed since the last."""
        now = _now()
        number = self.lane_number
        for key, (channel, counted) in list(self._channels.items()):
            puts, gets = counted
            depth: int | None = None
            try:  # (never raises: a channel may be anything that reports puts and gets)
                if getattr(channel, "_lane_number", None) == number:  # counted in C too
                    puts += channel._lane_puts  # type: ignore[attr-defined]
                    gets += channel._lane_gets  # type: ignore[attr-defined]
                sized = getattr(channel, "_sized", None)
                if sized is not None:  # a plait queue: its unclaimed items, read unlocked
                    depth = max(len(sized) - channel._ready, 0)  # type: ignore[attr-defined]
            except Exception:
                pass
            if depth is None and puts and gets:  # both ends seen here: the difference
                depth = max(puts - gets, 0)
            sample = (puts, gets, depth)
            if self._sampled.get(key) != sample:
                self._sampled[key] = sample
                self._append((COUNTS, now, None, key, list(sample), self._next()))

    def _write(self) -> None:
        self._sample_channels()
        meta = self._meta
        if meta:
            lines = []
            while meta:
                lines.append(json.dumps(meta.popleft(), separators=(",", ":")) + "\n")
            with open(self._path("meta"), "a", encoding="utf-8") as f:
                f.write("".join(lines))
        ring = self._ring
        if not ring:
            return
        events = []
        popleft = ring.popleft
        try:
            while True:
                events.append(popleft())
        except IndexError:
            pass
        # Every event carries a sequence number: those missing fell out of the full ring.
        last = max(e[5] for e in events)
        self.dropped += max(0, last + 1 - self._expected - len(events))
        self._expected = last + 1
        if self._segment_events >= self.capacity // 2:
            self._rotate()
        # One marshal blob per flush, length-prefixed: encoding is a C call costing a tenth
        # of JSON's, and a blob cut short by a crash loses only its own batch.
        blob = marshal.dumps((self.dropped, events), 4)
        with open(self._path(f"events-{self._segment:05d}"), "ab") as f:
            f.write(len(blob).to_bytes(4, "little") + blob)
        self._segment_events += len(events)

    def _rotate(self) -> None:
        self._segments.append((self._path(f"events-{self._segment:05d}"), self._segment_events))
        self._segment += 1
        self._segment_events = 0
        while len(self._segments) > 1:  # keep the last full segment and the new one
            path, count = self._segments.popleft()
            self.dropped += count
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- what the hooks record -----------------------------------------------------------
    # Each hook is one tuple appended to the ring (a C call that drops the oldest when the
    # ring is full); a strand or an object is described once, the first time it is seen.

    def _new_strand(self, strand: Strand) -> None:
        self._strands.add(strand.sid)
        self._meta.append(
            {
                "meta": "strand",
                "sid": strand.sid,
                "kind": strand.kind,
                "name": strand.name,
                "parent": getattr(strand.parent, "sid", None),
                "child_pid": strand.pid if strand.kind == "process" else None,
                "oid": id(strand),  # a join parks on the strand itself: its end wakes them
            }
        )

    def _new_object(self, obj: object) -> None:
        label = _label(obj, len(self._objects) + 1)
        self._objects[id(obj)] = label
        self._meta.append({"meta": "object", "id": id(obj), "label": label,
                           "type": type(obj).__name__})  # fmt: skip

    def _event(self, code: str, strand: Strand, obj: object, b: Any) -> None:
        sid = strand.sid
        if sid not in self._strands:
            self._new_strand(strand)
        key = id(obj)
        if key not in self._objects:
            self._new_object(obj)
        self._append((code, _now(), sid, key, b, self._next()))

    def _life(self, code: str, strand: Strand, a: Any, b: Any) -> None:
        if strand.sid not in self._strands:
            self._new_strand(strand)
        self._append((code, _now(), strand.sid, a, b, self._next()))

    def strand_spawned(self, strand: Strand) -> None:
        self._life(SPAWN, strand, None, None)

    def strand_started(self, strand: Strand) -> None:
        self._life(START, strand, threading.get_ident(), None)

    def strand_parked(self, strand: Strand, on: object) -> None:
        self._event(PARK, strand, on, _owner_sid(on))

    def strand_unparked(self, strand: Strand, on: object, outcome: str) -> None:
        self._event(UNPARK, strand, on, outcome)

    def strand_exited(self, strand: Strand, error: BaseException | None) -> None:
        if error is None:
            task = getattr(strand, "task", None)  # a cancelled coroutine reports no error
            if isinstance(task, asyncio.Future) and task.done() and task.cancelled():
                self._life(EXIT, strand, "CancelledError", "cancelled")
            else:
                self._life(EXIT, strand, None, None)
            return
        how = "cancelled" if isinstance(error, asyncio.CancelledError) else "error"
        self._life(EXIT, strand, type(error).__name__, how)

    def woke(self, strand: Strand, woken: Strand, on: object) -> None:
        self._event(WAKE, strand, on, woken.sid)

    def acquired(self, strand: Strand, resource: object) -> None:
        self._event(ACQUIRE, strand, resource, None)

    def released(self, strand: Strand, resource: object) -> None:
        self._event(RELEASE, strand, resource, None)

    def _count_channel(self, channel: object) -> list[int]:
        """Start counting ``channel`` (the C queue's ``register``): its Python-path counts."""
        key = id(channel)
        if key not in self._objects:
            self._new_object(channel)
        entry = self._channels.get(key)
        if entry is None or entry[0] is not channel:
            entry = self._channels[key] = (channel, [0, 0])
        return entry[1]

    def sent(self, strand: Strand, channel: object, item: Any) -> None:
        entry = self._channels.get(id(channel))
        counted = entry[1] if entry is not None else self._count_channel(channel)
        counted[0] += 1

    def received(self, strand: Strand, channel: object, item: Any) -> None:
        entry = self._channels.get(id(channel))
        counted = entry[1] if entry is not None else self._count_channel(channel)
        counted[1] += 1

    def task_ran(
        self, name: str, items: int, started_ns: int, ended_ns: int, strand: Strand | None = None
    ) -> None:
        self._life(TASK, strand or current_strand(), [name, items], started_ns)
        # (recorded at its end: the event's time is ended_ns, close enough to now)

    def span(self, name: str, begin: bool) -> None:
        """A user span's edge on the calling strand (see :func:`plait.trace_span`)."""
        self._life(SPAN_BEGIN if begin else SPAN_END, current_strand(), name, None)


def active_recorder(instruments: tuple[Instrument, ...]) -> Recorder | None:
    """The first recorder among ``instruments`` (the installed ones), if any."""
    for instrument in instruments:
        if isinstance(instrument, Recorder):
            return instrument
    return None
