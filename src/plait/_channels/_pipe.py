"""``Pipe``: a ``multiprocessing.Pipe`` whose ends work from every strand kind.

Each end wraps a ``multiprocessing.connection.Connection`` (same wire format, same
``send/recv/poll/close`` and ``send_bytes/recv_bytes`` behaviour, ``EOFError`` at the end) and
adds what it lacks:

* safety for every strand kind: one plait lock per direction (threads, coroutines and green
  strands park on it); a reader waits for readability *before* taking the lock, so a
  coroutine on the same end is never stuck behind a thread blocked in ``recv``;
* a message is read by plait's own framing (the same wire format), a chunk at a time as
  the bytes arrive: a coroutine never blocks its loop on a message that is only partly
  written (it awaits readability between chunks), and a reader that leaves mid-message --
  timed out, cancelled -- leaves what it read for the next reader, so no message is lost
  or torn;
* ``recv(timeout=)`` (and ``recv_bytes``/``recv_bytes_into``): a thread's wait honours a
  timeout (``TimeoutError``) and its cancel scopes (``move_on_after``, ``tg.cancel()``,
  seen within 50 ms);
* ``async_send`` / ``async_recv`` / ``async_poll``: coroutines wait on their loop's selector
  (through :mod:`plait._core.fdwatch`, so several may wait on one end), never blocking it.
  A message is written from the loop a ``PIPE_BUF``-sized chunk at a time, each when the
  end is writable (such a write never blocks), so a slow reader cannot stall the loop and
  no worker thread is needed. A cancelled ``async_send*`` is either not sent at all, or --
  once its first byte went out -- completed and reported as sent (the await returns; the
  cancellation is then seen at the task's next await): never sent after reporting
  cancellation;
* pickling at any time: an end passed to a process -- at spawn, or later through a queue or
  another pipe -- arrives as a duplicate of the same OS handle (``DupFd``), as with
  ``multiprocessing``'s own connections.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import multiprocessing.connection as mpc
import os
import select
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

from plait._core import (
    Strand,
    await_,
    check_timeout,
    checkpoint,
    current_strand,
    note_parked,
    note_unparked,
    waiter_for,
)
from plait._core.fdwatch import fd_watch
from plait._core.green import in_green_strand, wait_fd
from plait._ipc.serialize import dumps, loads
from plait._sync._lock import Lock

__all__ = ["Connection", "ConnectionStatistics", "Pipe"]

_PIPE_BUF = select.PIPE_BUF  # a write this small to a writable pipe or socket never blocks
_SLICE = 0.05  # a thread waiting to read looks at its cancel scopes this often
_CHUNK = 1 << 20  # bytes read per system call


@dataclass(frozen=True)
class ConnectionStatistics:
    """A snapshot of one pipe end, for diagnostics and tests."""

    closed: bool
    readable: bool
    writable: bool
    message_waiting: bool


class Connection:
    """One end of a :func:`Pipe` (``multiprocessing.connection.Connection``'s API + async)."""

    def __init__(self, raw: mpc.Connection) -> None:
        self._raw = raw
        self._rlock = Lock()  # (plait's: a coroutine or green strand parks on it, as a thread)
        self._wlock = Lock()
        self._partial = _Frame()  # the message being read (its reader may have left)

    # -- stdlib surface -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether this end is closed."""
        return self._raw.closed

    @property
    def readable(self) -> bool:
        """Whether this end can receive."""
        return self._raw.readable

    @property
    def writable(self) -> bool:
        """Whether this end can send."""
        return self._raw.writable

    def fileno(self) -> int:
        """The OS handle of this end."""
        return self._raw.fileno()

    def close(self) -> None:
        """Close this end; the other end's ``recv`` then raises ``EOFError``."""
        self._raw.close()

    def statistics(self) -> ConnectionStatistics:
        """A frozen snapshot of this end."""
        raw = self._raw
        waiting = not raw.closed and raw.readable and raw.poll(0)
        return ConnectionStatistics(raw.closed, raw.readable, raw.writable, waiting)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, obj: Any) -> None:
        """Send a picklable object (pickled here: an unpicklable one raises here)."""
        self.send_bytes(dumps(obj, what="the object sent through the pipe"))

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Send bytes-like data as one message."""
        if in_green_strand():  # a full pipe must not block the loop the strand shares
            await_(self.async_send_bytes(buf, offset, size))
            return
        with self._wlock:
            self._raw.send_bytes(buf, offset, size)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message can be read now, waiting up to ``timeout`` (``None``: forever)."""
        return self._raw.poll(timeout)

    def recv(self, timeout: float | None = None) -> Any:
        """Receive one object, waiting for it; ``EOFError`` when the other end closed,
        ``TimeoutError`` after ``timeout`` seconds (``None``: no limit)."""
        return loads(self.recv_bytes(timeout=timeout))

    def recv_bytes(self, maxlength: int | None = None, timeout: float | None = None) -> bytes:
        """Receive one message as bytes (``timeout``: as for :meth:`recv`)."""
        return self._recv_message(maxlength, timeout)

    def recv_bytes_into(self, buf: Any, offset: int = 0, timeout: float | None = None) -> int:
        """Receive one message into ``buf``; returns its size (``timeout``: as for
        :meth:`recv`)."""
        view = memoryview(buf).cast("B")
        if offset < 0 or offset > view.nbytes:
            raise ValueError("offset out of bounds")
        data = self._recv_message(None, timeout)
        if view.nbytes < offset + len(data):
            raise multiprocessing.BufferTooShort(data)
        view[offset : offset + len(data)] = data
        return len(data)

    def _recv_message(self, maxlength: int | None, timeout: float | None) -> bytes:
        wait = check_timeout(timeout)
        deadline = None if wait is None else time.monotonic() + wait
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        raw = self._raw
        if raw.closed:
            raise OSError("handle is closed")
        if not raw.readable:
            raise OSError("connection is write-only")
        fd = raw.fileno()
        while True:
            self._wait_readable(fd, deadline)
            if deadline is None:
                self._rlock.acquire()
            elif not self._rlock.acquire(True, max(0.0, deadline - time.monotonic())):
                raise TimeoutError("no message arrived within the timeout")
            try:
                message = self._take_ready(fd, maxlength)
            finally:
                self._rlock.release()
            if message is not None:
                return message  # else the rest is not here yet: wait without the lock

    def _take_ready(self, fd: int, maxlength: int | None) -> bytes | None:
        """(read lock held) Feed the partial message what ``fd`` has now; the message once
        it is whole, else ``None`` (what was read stays for the next reader)."""
        frame = self._partial
        while True:
            need = frame.need()
            if need == 0:
                return frame.take(maxlength)
            if not _readable(fd, 0):
                return None
            frame.feed(_read(fd, need))

    def _wait_readable(self, fd: int, deadline: float | None) -> None:
        """Wait (cancellably) until ``fd`` has bytes; ``TimeoutError`` at ``deadline``.

        A wait that blocks parks the strand on this end through the kernel (instruments,
        ``wait_parked``, diagnostics see it); the socket is watched here, by slices, so
        that cancel scopes are seen within ``_SLICE``."""
        checkpoint()  # a cancelled scope, or one past its deadline, raises here
        if _readable(fd, 0):
            return
        strand = current_strand()
        if strand.kind == "green":  # park through the kernel, which switches to the loop
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not wait_fd(fd, write=False, timeout=left, on=self) and not _readable(fd, 0):
                raise TimeoutError("no message arrived within the timeout")
            return
        note_parked(strand, self, waiter_for(strand, self, None))
        outcome = "cancelled"  # anything raised while parked (KeyboardInterrupt...)
        try:
            while True:
                scope_outcome = _scope_outcome(strand)
                if scope_outcome is not None:
                    outcome = scope_outcome
                    checkpoint()  # raises the due scope's cancellation
                wait = _SLICE
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if _readable(fd, 0):
                            outcome = "woken"
                            return
                        outcome = "timeout"
                        raise TimeoutError("no message arrived within the timeout")
                    wait = min(wait, left)
                if _readable(fd, wait):
                    outcome = "woken"
                    return
        finally:
            note_unparked(strand, self, outcome)

    # -- async forms --------------------------------------------------------------------

    async def _wait(self, writer: bool, timeout: float | None) -> bool:
        """Wait on the loop's selector until this end is writable (or readable), parked
        on this end through the kernel; ``False`` after ``timeout``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self._raw.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        watch = fd_watch(loop)
        watch.add(fd, writer, ready)
        strand = current_strand()
        note_parked(strand, self, waiter_for(strand, self, loop))
        outcome = "cancelled"
        try:
            if timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(fut, timeout)
                except TimeoutError:
                    outcome = "timeout"
                    return False
            outcome = "woken"
            return True
        finally:
            note_unparked(strand, self, outcome)
            watch.remove(fd, writer, ready)

    async def async_poll(self, timeout: float | None = 0.0) -> bool:
        """Coroutine form of :meth:`poll`."""
        if self._raw.poll(0):
            return True
        wait = check_timeout(timeout)
        if wait == 0.0:
            return False
        return await self._wait(False, wait) and self._raw.poll(0)

    async def async_recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Coroutine form of :meth:`recv_bytes`: reads each chunk as it arrives, never
        blocking the loop on a message that is only partly written."""
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        raw = self._raw
        if raw.closed:
            raise OSError("handle is closed")
        fd = raw.fileno()
        while True:
            if not _readable(fd, 0):
                await self._wait(False, None)
            await self._rlock.async_acquire()  # (another strand may be reading a message)
            try:
                message = self._take_ready(fd, maxlength)
            finally:
                self._rlock.release()
            if message is not None:
                return message  # else the rest is not here yet: wait on the loop, unlocked

    async def async_recv(self) -> Any:
        """Coroutine form of :meth:`recv`."""
        return loads(await self.async_recv_bytes())

    async def async_send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Coroutine form of :meth:`send_bytes` (cancellation: see the module docstring)."""
        parts = _frame(self._raw, buf, offset, size)
        await self._wlock.async_acquire()  # (cancelled while it waits here: nothing sent)
        try:
            await self._write_whole(parts)
        finally:
            self._wlock.release()

    async def _write_whole(self, parts: list[memoryview]) -> None:
        """(write lock held) Write ``parts`` from the loop without ever blocking it: as much
        as the end takes at once, then wait until it is writable again. Cancelled before the
        first byte: raise, nothing sent; after it: finish (a torn message would corrupt the
        stream for good), return, and let the task see its cancellation at its next await."""
        fd = self._raw.fileno()
        write, done = _nonblocking_writer(fd)
        started = False
        cancels = 0
        try:
            for view in parts:
                pos, end = 0, view.nbytes
                while pos < end:
                    n = write(view[pos:])
                    if n:
                        pos += n
                        started = True
                        continue
                    try:
                        await self._wait(True, None)
                    except asyncio.CancelledError:
                        if not started:
                            raise
                        cancels += 1
        finally:
            done()
        if cancels:
            _recancel(cancels)

    async def async_send(self, obj: Any) -> None:
        """Coroutine form of :meth:`send`."""
        await self.async_send_bytes(dumps(obj, what="the object sent through the pipe"))

    # -- across processes ---------------------------------------------------------------

    def __reduce__(self) -> Any:
        raw = self._raw
        if raw.closed:
            raise OSError("cannot send a closed pipe end to another process")
        return (_rebuild, (reduction.DupFd(raw.fileno()), raw.readable, raw.writable))

    def __repr__(self) -> str:
        state = "closed" if self._raw.closed else f"fd={self._raw.fileno()}"
        mode = ("r" if self._raw.readable else "") + ("w" if self._raw.writable else "")
        return f"<plait.Connection {mode} {state}>"


class _Frame:
    """One message being read: its header, then its payload (multiprocessing's format)."""

    __slots__ = ("buf", "size")

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.size = -1  # unknown until the header is in

    def need(self) -> int:
        """Bytes still to read for this message (0: complete)."""
        have = self.buf.tell()
        if self.size < 0:
            if have < 4:
                return 4 - have
            (size,) = struct.unpack("!i", self.buf.getbuffer()[:4])
            if size != -1:
                self.size = size
                self.buf = io.BytesIO()
                return self.need()
            if have < 12:
                return 12 - have
            (self.size,) = struct.unpack("!Q", self.buf.getbuffer()[4:12])
            self.buf = io.BytesIO()
            return self.need()
        return min(self.size - have, _CHUNK)

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            if self.size < 0 and self.buf.tell() == 0:
                raise EOFError
            raise OSError("got end of file during message")
        self.buf.write(chunk)

    def take(self, maxlength: int | None) -> bytes:
        """The complete message (the frame starts over)."""
        data = self.buf.getvalue()
        self.buf = io.BytesIO()
        self.size = -1
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data


def _scope_outcome(strand: Strand) -> str | None:
    """How a due cancel scope of ``strand`` ends its wait: ``"cancelled"`` (cancelled) or
    ``"timeout"`` (past its deadline); ``None`` when none is due."""
    scopes = strand.cancel_scopes
    if scopes:
        now = time.monotonic()
        for scope in scopes:
            if scope.cancel_called:
                return "cancelled"
            if scope.deadline <= now:
                return "timeout"
    return None


def _readable(fd: int, timeout: float) -> bool:
    return bool(mpc.wait([fd], timeout))


_read = os.read


def _frame(raw: mpc.Connection, buf: Any, offset: int, size: int | None) -> list[memoryview]:
    """One message as multiprocessing writes it (length header, then the bytes), checked as
    ``Connection.send_bytes`` checks it."""
    if raw.closed:
        raise OSError("handle is closed")
    if not raw.writable:
        raise OSError("connection is read-only")
    view = memoryview(buf)
    if view.itemsize > 1:
        view = view.cast("B")
    n = view.nbytes
    if offset < 0:
        raise ValueError("offset is negative")
    if n < offset:
        raise ValueError("buffer length < offset")
    if size is None:
        size = n - offset
    elif size < 0:
        raise ValueError("size is negative")
    elif offset + size > n:
        raise ValueError("buffer length < offset + size")
    header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)
    payload = view[offset : offset + size]
    if len(header) + size <= _PIPE_BUF:  # (one write)
        return [memoryview(header + payload)]
    return [memoryview(header), payload]


def _nonblocking_writer(fd: int) -> tuple[Callable[[memoryview], int], Callable[[], None]]:
    """``(write, done)``: ``write(view)`` writes what ``fd`` takes now without blocking and
    returns how much (0: nothing fits); ``done()`` frees what it used.

    The end's own file description stays blocking (another process may share it): a socket
    is written with ``MSG_DONTWAIT``; a pipe through a second, non-blocking description of
    it (``/proc/self/fd``); failing that, ``PIPE_BUF`` bytes at a time when ``poll`` says
    the pipe is writable (such a write never blocks)."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISSOCK(mode):
        sock = socket.socket(fileno=os.dup(fd))

        def send(view: memoryview) -> int:
            try:
                return sock.send(view, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return 0

        return send, sock.close
    if stat.S_ISFIFO(mode):
        try:
            other = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            pass
        else:

            def write(view: memoryview) -> int:
                try:
                    return os.write(other, view)
                except BlockingIOError:
                    return 0

            return write, lambda: os.close(other)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)

    def write_small(view: memoryview) -> int:
        return os.write(fd, view[:_PIPE_BUF]) if poller.poll(0) else 0

    return write_small, lambda: None


def _recancel(times: int) -> None:
    """Cancellations caught while a begun message was finished: the task sees them at its
    next await instead."""
    task = asyncio.current_task()
    if task is not None:
        for _ in range(times):
            task.uncancel()
        for _ in range(times):
            task.cancel()


def _rebuild(dup: Any, readable: bool, writable: bool) -> Connection:
    return Connection(mpc.Connection(dup.detach(), readable, writable))


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Two connected ends, like ``multiprocessing.Pipe`` (``duplex=False``: recv end first)."""
    a, b = mpc.Pipe(duplex)
    return Connection(a), Connection(b)
