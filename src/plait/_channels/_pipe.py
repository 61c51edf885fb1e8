"""``Pipe``: a ``multiprocessing.Pipe`` whose ends work from every strand kind.

Each end wraps a ``multiprocessing.connection.Connection`` (same wire format, same
``send/recv/poll/close`` and ``send_bytes/recv_bytes`` behaviour, ``EOFError`` at the end) and
adds what it lacks:

* thread safety: one lock per direction, held only while a whole message is ready (a reader
  waits for readability *before* taking the lock, so a coroutine on the same end is never
  stuck behind a thread blocked in ``recv``);
* ``async_send`` / ``async_recv`` / ``async_poll``: coroutines wait on their loop's selector
  (``add_reader``/``add_writer``), never blocking it; a large message is written from a
  worker thread so a slow reader cannot stall the loop;
* pickling at any time: an end passed to a process -- at spawn, or later through a queue or
  another pipe -- arrives as a duplicate of the same OS handle (``DupFd``), as with
  ``multiprocessing``'s own connections.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection as mpc
import threading
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any

from plait._core import check_timeout
from plait._ipc.serialize import dumps, loads

__all__ = ["Connection", "ConnectionStatistics", "Pipe"]

_SMALL = 16 * 1024  # messages up to this size are written straight from the loop thread


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
        self._rlock = threading.Lock()
        self._wlock = threading.Lock()

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
        with self._wlock:
            self._raw.send_bytes(buf, offset, size)

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message can be read now, waiting up to ``timeout`` (``None``: forever)."""
        return self._raw.poll(timeout)

    def recv(self) -> Any:
        """Receive one object, waiting for it; ``EOFError`` when the other end closed."""
        return loads(self.recv_bytes())

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as bytes."""
        raw = self._raw
        while True:
            raw.poll(None)
            with self._rlock:
                if raw.poll(0):
                    return raw.recv_bytes(maxlength)

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive one message into ``buf``; returns its size."""
        raw = self._raw
        while True:
            raw.poll(None)
            with self._rlock:
                if raw.poll(0):
                    return raw.recv_bytes_into(buf, offset)

    # -- async forms --------------------------------------------------------------------

    async def _wait(self, writer: bool, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        fd = self._raw.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        if writer:
            loop.add_writer(fd, ready)
        else:
            loop.add_reader(fd, ready)
        try:
            if timeout is None:
                await fut
                return True
            try:
                await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                return False
            return True
        finally:
            if writer:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

    async def async_poll(self, timeout: float | None = 0.0) -> bool:
        """Coroutine form of :meth:`poll`."""
        if self._raw.poll(0):
            return True
        wait = check_timeout(timeout)
        if wait == 0.0:
            return False
        return await self._wait(False, wait) and self._raw.poll(0)

    async def async_recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Coroutine form of :meth:`recv_bytes`."""
        raw = self._raw
        while True:
            if not raw.poll(0):
                await self._wait(False, None)
            if self._rlock.acquire(False):
                try:
                    if raw.poll(0):
                        return raw.recv_bytes(maxlength)
                finally:
                    self._rlock.release()
            else:
                await asyncio.sleep(0.0005)  # another strand is reading a message right now

    async def async_recv(self) -> Any:
        """Coroutine form of :meth:`recv`."""
        return loads(await self.async_recv_bytes())

    async def async_send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        """Coroutine form of :meth:`send_bytes`."""
        view = memoryview(buf)
        n = (view.nbytes - offset) if size is None else size
        if n > _SMALL:
            await asyncio.to_thread(self.send_bytes, buf, offset, size)
            return
        await self._wait(True, None)
        self.send_bytes(buf, offset, size)

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


def _rebuild(dup: Any, readable: bool, writable: bool) -> Connection:
    return Connection(mpc.Connection(dup.detach(), readable, writable))


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Two connected ends, like ``multiprocessing.Pipe`` (``duplex=False``: recv end first)."""
    a, b = mpc.Pipe(duplex)
    return Connection(a), Connection(b)
