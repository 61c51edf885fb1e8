"""The result channel: one framed message from a child to its parent's watcher.

A message is an 8-byte length, a tag byte (:data:`RESULT_OK` or :data:`RESULT_ERR`) and a
pickle: the return value, or a :class:`~plait._ipc.serialize.PackedError`. The child writes
it blocking; the parent reads it a piece at a time from a non-blocking pipe, so a slow or
stalled child (or a writer end that a forked grandchild still holds) never stalls the
watcher, and a large result never waits for anyone to ``join``.
"""

from __future__ import annotations

import os
import struct
from multiprocessing.connection import Connection
from typing import Any

from plait._errors import SerializationError
from plait._ipc.serialize import PackedError, loads, unpack_error

__all__ = ["RESULT_ERR", "RESULT_OK", "Outcome", "ResultReader", "decode", "write_message"]

# What the watcher hands to ``on_done``: ("ok", value), ("err", exception) or None when the
# child sent nothing (it was killed or called os._exit).
Outcome = tuple[str, Any] | None

# The tag byte of a result message; the pickle follows.
RESULT_OK = b"\x00"
RESULT_ERR = b"\x01"


FRAME = struct.Struct("!Q")  # a result message: its length, then a tag byte and a pickle


def write_message(fd: int, tag: bytes, payload: bytes) -> None:
    """In the child: write one framed message to the result pipe (blocking)."""
    _write_all(fd, FRAME.pack(len(tag) + len(payload)) + tag)
    _write_all(fd, payload)


def _write_all(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])


class ResultReader:
    """Reads one framed message from a non-blocking pipe, a piece at a time.

    The watcher never blocks on one child: a slow or stopped writer, or a writer end that
    a forked grandchild still holds, cannot stall the results of every other child.
    """

    __slots__ = ("_body", "_got", "_header", "conn", "fd")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._header = bytearray()
        self._body: bytearray | None = None
        self._got = 0

    def fileno(self) -> int:
        return self.fd

    def pump(self) -> bool:
        """Read what the pipe holds; ``True`` once the message is whole or the pipe ended."""
        while True:
            try:
                body = self._body
                if body is None:
                    chunk = os.read(self.fd, FRAME.size - len(self._header))
                    if not chunk:
                        return True
                    self._header += chunk
                    if len(self._header) == FRAME.size:
                        self._body = bytearray(FRAME.unpack(self._header)[0])
                        if not self._body:
                            return True
                    continue
                with memoryview(body) as view:
                    n = os.readv(self.fd, [view[self._got :]])
                if n == 0:
                    return True
                self._got += n
                if self._got == len(body):
                    return True
            except BlockingIOError:
                return False
            except OSError:
                return True

    def message(self) -> bytearray | None:
        """The whole message, or ``None`` if the pipe ended before it was complete."""
        body = self._body
        if body is None or self._got != len(body) or not body:
            return None
        return body

    def close(self) -> None:
        self.conn.close()


def decode(data: bytearray, describe: str) -> Outcome:
    tag = data[:1]
    try:
        payload = loads(memoryview(data)[1:])
    except Exception as exc:
        error = SerializationError(
            f"the result of {describe} arrived but cannot be unpickled here "
            f"({type(exc).__name__}: {exc}); return something the parent can import"
        )
        error.__cause__ = exc
        return ("err", error)
    if tag == RESULT_ERR:
        assert isinstance(payload, PackedError)
        return ("err", unpack_error(payload))
    return ("ok", payload)
