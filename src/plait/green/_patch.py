"""The patched calls (see the package docstring): each one checks whether it runs in a green
strand, and if not, calls the original at once."""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from plait._core import await_, sleep
from plait._core.green import in_green_strand, wait_fd, wait_fds

__all__ = ["is_patched", "patch", "unpatch"]

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_EPOLL_READ = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLPRI", 0)
_EPOLL_WRITE = getattr(select, "EPOLLOUT", 0)
_EPOLL_DEFAULT = _EPOLL_READ | _EPOLL_WRITE
_POLL_DEFAULT = select.POLLIN | select.POLLPRI | select.POLLOUT
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}

# (owner, attribute name) -> the original, while patched
_originals: dict[tuple[Any, str], Any] = {}
_lock = threading.Lock()


def _original(owner: Any, name: str) -> Any:
    return _originals.get((owner, name)) or getattr(owner, name)


def _ready(fd: int, write: bool) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT if write else select.POLLIN)
    return bool(poller.poll(0))


def _deadline(sock: socket.socket) -> float | None:
    timeout = sock.gettimeout()
    return None if timeout is None else time.monotonic() + timeout


def _await_ready(sock: socket.socket, write: bool, deadline: float | None) -> None:
    """Park the green strand until ``sock`` is ready; the socket's own timeout error after
    its deadline."""
    fd = sock.fileno()
    while not _ready(fd, write):
        left = None if deadline is None else deadline - time.monotonic()
        if (left is not None and left <= 0) or not wait_fd(fd, write=write, timeout=left, on=sock):
            raise TimeoutError("timed out")


def _socket_io(name: str, write: bool, flags_at: int) -> Callable[..., Any]:
    """A socket method that, in a green strand, waits for readiness by parking, then makes
    one non-blocking call (``MSG_DONTWAIT``), again after a spurious wake."""
    original = getattr(socket.socket, name)

    def method(self: socket.socket, *args: Any) -> Any:
        if not in_green_strand() or self.gettimeout() == 0.0:
            return original(self, *args)
        call = list(args)
        while len(call) <= flags_at:
            call.append(0)  # (the defaults: nbytes=0, flags=0)
        call[flags_at] |= _DONTWAIT
        deadline = _deadline(self)
        while True:
            _await_ready(self, write, deadline)
            try:
                return original(self, *call)
            except (BlockingIOError, InterruptedError):
                continue  # (another reader was first, or a spurious wake): wait again

    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


def _sendall(self: socket.socket, data: Any, flags: int = 0) -> None:
    original = _original(socket.socket, "sendall")
    if not in_green_strand() or self.gettimeout() == 0.0:
        return original(self, data, flags)  # type: ignore[no-any-return]
    send = _original(socket.socket, "send")
    view = memoryview(data).cast("B")
    deadline = _deadline(self)
    while view.nbytes:
        _await_ready(self, True, deadline)
        try:
            sent = send(self, view, flags | _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            continue
        view = view[sent:]
    return None


def _accept(self: socket.socket) -> tuple[socket.socket, Any]:
    original = _original(socket.socket, "accept")
    if in_green_strand() and self.gettimeout() != 0.0:
        _await_ready(self, False, _deadline(self))
    return original(self)  # type: ignore[no-any-return]


def _connect(self: socket.socket, address: Any) -> None:
    original = _original(socket.socket, "connect")
    timeout = self.gettimeout()
    if not in_green_strand() or timeout == 0.0:
        return original(self, address)  # type: ignore[no-any-return]
    self.setblocking(False)
    try:
        err = self.connect_ex(address)
        if err in _IN_PROGRESS:
            if not wait_fd(self.fileno(), write=True, timeout=timeout, on=self):
                raise TimeoutError("timed out")
            err = self.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err and err != errno.EISCONN:
            raise OSError(err, os.strerror(err))
    finally:
        self.settimeout(timeout)
    return None


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    original = _original(socket, "getaddrinfo")
    if not in_green_strand():
        return original(host, port, family, type, proto, flags)
    import asyncio

    loop = asyncio.get_running_loop()  # (its resolver runs the original in a thread)
    return await_(loop.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags))


def _in_a_worker_thread(owner: Any, name: str) -> Callable[..., Any]:
    """A call that blocks inside the C library, with nothing to wait on that the loop could
    watch (the resolver's other lookups, ``os.waitpid``): inside a green strand it runs in
    the loop's default executor while the strand parks on it (a cancelled strand stops
    waiting; the call itself finishes in its thread)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        original = _original(owner, name)
        if not in_green_strand():
            return original(*args, **kwargs)
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        return await_(loop.run_in_executor(None, functools.partial(original, *args, **kwargs)))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(_original(owner, name), "__doc__", None)
    return call


def _waitpid(pid: int, options: int) -> tuple[int, int]:
    original = _original(os, "waitpid")
    if options & os.WNOHANG or not in_green_strand():
        return original(pid, options)  # type: ignore[no-any-return]
    return _in_a_worker_thread(os, "waitpid")(pid, options)  # type: ignore[no-any-return]


_RESOLVER_CALLS = ("gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")


def _sleep(seconds: float) -> None:
    if not in_green_strand():
        return _original(time, "sleep")(seconds)  # type: ignore[no-any-return]
    sleep(seconds)
    return None


def _popen_wait(self: subprocess.Popen[Any], timeout: float | None = None) -> int:
    original = _original(subprocess.Popen, "wait")
    if not in_green_strand() or self.returncode is not None or timeout == 0:
        return original(self, timeout)  # type: ignore[no-any-return]
    try:
        fd = os.pidfd_open(self.pid)
    except (AttributeError, OSError):  # no pidfd here: look again now and then
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while (code := self.poll()) is None:
            if timeout is not None and deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            sleep(pause)
            pause = min(pause * 2, 0.05)
        return code
    try:
        if not wait_fd(fd, write=False, timeout=timeout, on=self):
            assert timeout is not None
            raise subprocess.TimeoutExpired(self.args, timeout)
    finally:
        os.close(fd)
    return original(self)  # type: ignore[no-any-return] # (it has exited: reaps at once)


def _ssl_op(name: str) -> Callable[..., Any]:
    """An ``ssl.SSLSocket`` method that, in a green strand, runs the TLS step without
    blocking (the socket's timeout set to 0 meanwhile) and parks on what the step wants
    (``SSLWantReadError``: readable; ``SSLWantWriteError``: writable)."""
    original = getattr(ssl.SSLSocket, name)

    def method(self: ssl.SSLSocket, *args: Any, **kwargs: Any) -> Any:
        timeout = self.gettimeout()
        if not in_green_strand() or timeout == 0.0 or self._sslobj is None:  # type: ignore[attr-defined]
            return original(self, *args, **kwargs)
        deadline = None if timeout is None else time.monotonic() + timeout
        self.settimeout(0.0)
        try:
            while True:
                try:
                    return original(self, *args, **kwargs)
                except ssl.SSLWantReadError:
                    write = False
                except ssl.SSLWantWriteError:
                    write = True
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not wait_fd(
                    self.fileno(), write=write, timeout=left, on=self
                ):
                    raise TimeoutError("timed out")
        finally:
            self.settimeout(timeout)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


def _fd_of(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.fileno())


def _select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
    original = _original(select, "select")
    if not in_green_strand() or timeout == 0:
        return original(rlist, wlist, xlist, timeout)
    ready = original(rlist, wlist, xlist, 0)
    if any(ready):
        return ready
    fds = [(_fd_of(r), False) for r in rlist] + [(_fd_of(w), True) for w in wlist]
    if fds:  # (an exceptional condition alone is not waited for: it is looked at again)
        wait_fds(fds, timeout=timeout, on=_select)
    elif timeout is not None:
        sleep(timeout)
    return original(rlist, wlist, xlist, 0)


def _selector_select(cls: type) -> Callable[..., Any]:
    """``select()`` of a ``selectors`` class: in a green strand, park on the registered
    files until one is ready, then ask the selector without waiting."""
    original = cls.select  # type: ignore[attr-defined]

    def select_(self: Any, timeout: float | None = None) -> Any:
        if not in_green_strand() or (timeout is not None and timeout <= 0):
            return original(self, timeout)
        events = original(self, 0)
        if events:
            return events
        fds = []
        for key in self.get_map().values():
            if key.events & selectors.EVENT_READ:
                fds.append((key.fd, False))
            if key.events & selectors.EVENT_WRITE:
                fds.append((key.fd, True))
        if fds:
            wait_fds(fds, timeout=timeout, on=self)
        elif timeout is not None:
            sleep(timeout)
        return original(self, 0)

    select_.__name__ = select_.__qualname__ = "select"
    select_.__doc__ = original.__doc__
    return select_


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    """``sendto(data, address)`` / ``sendto(data, flags, address)``."""
    original = _original(socket.socket, "sendto")
    if not in_green_strand() or self.gettimeout() == 0.0 or len(args) not in (1, 2):
        return original(self, data, *args)  # type: ignore[no-any-return]
    flags, address = (0, args[0]) if len(args) == 1 else args
    deadline = _deadline(self)
    while True:
        _await_ready(self, True, deadline)
        try:
            return original(self, data, flags | _DONTWAIT, address)  # type: ignore[no-any-return]
        except (BlockingIOError, InterruptedError):
            continue


def _sendmsg(
    self: socket.socket, buffers: Any, ancdata: Any = (), flags: int = 0, *rest: Any
) -> int:
    original = _original(socket.socket, "sendmsg")
    if not in_green_strand() or self.gettimeout() == 0.0:
        return original(self, buffers, ancdata, flags, *rest)  # type: ignore[no-any-return]
    buffers = list(buffers)  # (an iterator is read once)
    deadline = _deadline(self)
    while True:
        _await_ready(self, True, deadline)
        try:
            return original(self, buffers, ancdata, flags | _DONTWAIT, *rest)  # type: ignore[no-any-return]
        except (BlockingIOError, InterruptedError):
            continue


class _Registrations:
    """The fds a poll-like object was given, kept beside the real object (``_real``) so
    that a green strand can park on them through its loop."""

    __slots__ = ("_events", "_real")

    def __init__(self, real: Any) -> None:
        self._real = real
        self._events: dict[int, int] = {}

    def register(self, fd: Any, eventmask: int = _POLL_DEFAULT) -> None:
        self._real.register(fd, eventmask)
        self._events[_fd_of(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        self._real.modify(fd, eventmask)
        self._events[_fd_of(fd)] = eventmask

    def unregister(self, fd: Any) -> None:
        self._real.unregister(fd)
        self._events.pop(_fd_of(fd), None)

    def _park(self, read_mask: int, write_mask: int, timeout: float | None) -> None:
        """Park the green strand until a registered fd may be ready, or ``timeout``."""
        fds = []
        for fd, mask in self._events.items():
            if mask & read_mask:
                fds.append((fd, False))
            if mask & write_mask:
                fds.append((fd, True))
        if fds:
            wait_fds(fds, timeout=timeout, on=self)
        elif timeout is not None:
            sleep(timeout)


class _GreenPoll(_Registrations):
    """What ``select.poll()`` returns once patched: the real poll object, whose ``poll()``
    parks a green strand on the registered fds instead of blocking its loop's thread
    (its timeout is in milliseconds, as ``poll``'s)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(_original(select, "poll")())

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout is not None and timeout < 0:
            timeout = None  # (poll's "forever")
        if not in_green_strand() or timeout == 0:
            return self._real.poll(timeout)  # type: ignore[no-any-return]
        events = self._real.poll(0)
        if events:
            return events  # type: ignore[no-any-return]
        seconds = None if timeout is None else timeout / 1000.0
        self._park(select.POLLIN | select.POLLPRI, select.POLLOUT, seconds)
        return self._real.poll(0)  # type: ignore[no-any-return]


class _GreenEpoll(_Registrations):
    """What ``select.epoll(...)`` makes once patched: the real epoll object (every other
    method and attribute is its own), whose ``poll()`` parks a green strand on the
    registered fds (timeout in seconds, as epoll's). (``select.epoll`` cannot be
    subclassed.)"""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_original(select, "epoll")(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @staticmethod
    def fromfd(fd: int) -> Any:
        """An epoll object for ``fd`` (the original kind: its ``poll()`` blocks)."""
        return _original(select, "epoll").fromfd(fd)

    def __enter__(self) -> _GreenEpoll:
        self._real.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.__exit__(*exc)

    def register(self, fd: Any, eventmask: int = _EPOLL_DEFAULT) -> None:
        super().register(fd, eventmask)

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout is not None and timeout < 0:
            timeout = None
        if not in_green_strand() or timeout == 0:
            return self._real.poll(-1 if timeout is None else timeout, maxevents)  # type: ignore[no-any-return]
        events = self._real.poll(0, maxevents)
        if events:
            return events  # type: ignore[no-any-return]
        self._park(_EPOLL_READ, _EPOLL_WRITE, timeout)
        return self._real.poll(0, maxevents)  # type: ignore[no-any-return]


_SELECTORS = [
    getattr(selectors, name)
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector")
    if hasattr(selectors, name)
]


def _replacements() -> list[tuple[Any, str, Any]]:
    io = [
        ("recv", False, 1),
        ("recv_into", False, 2),
        ("recvfrom", False, 1),
        ("recvfrom_into", False, 2),
        ("send", True, 1),
        ("recvmsg", False, 2),
        ("recvmsg_into", False, 2),
    ]
    return [
        *[(socket.socket, name, _socket_io(name, write, at)) for name, write, at in io],
        (socket.socket, "sendall", _sendall),
        (socket.socket, "sendto", _sendto),
        (socket.socket, "sendmsg", _sendmsg),
        (select, "poll", _GreenPoll),
        *([(select, "epoll", _GreenEpoll)] if hasattr(select, "epoll") else []),
        (socket.socket, "accept", _accept),
        (socket.socket, "connect", _connect),
        (socket, "getaddrinfo", _getaddrinfo),
        *[(socket, name, _in_a_worker_thread(socket, name)) for name in _RESOLVER_CALLS],
        (os, "waitpid", _waitpid),
        (time, "sleep", _sleep),
        (subprocess.Popen, "wait", _popen_wait),
        *[(ssl.SSLSocket, name, _ssl_op(name)) for name in _SSL_OPS],
        (select, "select", _select),
        *[(cls, "select", _selector_select(cls)) for cls in _SELECTORS],
    ]


_SSL_OPS = ("read", "write", "send", "do_handshake")  # (recv, recv_into, sendall use these)


def patch() -> None:
    """Make the stdlib's blocking calls (see the package docstring) switch inside green
    strands. Idempotent; calls outside green strands are unchanged."""
    with _lock:
        if _originals:
            return
        for owner, name, replacement in _replacements():
            _originals[(owner, name)] = getattr(owner, name)
            setattr(owner, name, replacement)


def unpatch() -> None:
    """Put the originals back."""
    with _lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()


def is_patched() -> bool:
    return bool(_originals)
