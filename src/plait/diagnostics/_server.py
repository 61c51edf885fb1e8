"""``plait dump PID`` from another terminal: a Unix socket per process, private to its user.

A process that serves dumps (debug mode, ``plait run``, or :func:`serve_dumps`) listens on
``<runtime dir>/plait/<pid>.sock``: the runtime dir is ``$XDG_RUNTIME_DIR`` or
``/tmp/plait-<uid>``, the ``plait`` folder is mode 0700 and owned by the user (checked), the
socket 0600. A client sends ``text`` or ``json`` and a newline, and reads the dump until the
server closes. :func:`request_dump` is the client, with a clear error for a PID that is dead,
another user's, or not serving.
"""

from __future__ import annotations

import atexit
import errno
import os
import socket
import stat
import threading
from pathlib import Path

from plait.diagnostics import _asleep, _dump

__all__ = ["DumpRequestError", "request_dump", "serve_dumps", "socket_path", "stop_serving"]


class DumpRequestError(Exception):
    """A dump could not be asked for: the message says why and what to do."""


def _runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base) and os.access(base, os.W_OK):
        return Path(base) / "plait"
    return Path("/tmp") / f"plait-{os.getuid()}"


def socket_path(pid: int) -> Path:
    """Where process ``pid`` of this user serves dumps."""
    return _runtime_dir() / f"{pid}.sock"


def _private_dir() -> Path:
    folder = _runtime_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{folder} is not a folder owned by this user: not serving dumps")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


class _Server:
    __slots__ = ("path", "pid", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.path: Path | None = None
        self.pid = 0


_server = _Server()
_start_lock = threading.Lock()


def serve_dumps() -> Path:
    """Serve ``plait dump PID`` for this process (idempotent); return the socket's path.

    The plait children it starts from then on (pool workers, process strands' workers,
    ``plait.Process``) serve too, so a dump shows the whole tree."""
    with _start_lock:
        if _server.sock is not None and _server.pid == os.getpid() and _server.path:
            return _server.path
        _sweep(_private_dir())
        path = socket_path(os.getpid())
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(4)
        _server.sock, _server.path, _server.pid = sock, path, os.getpid()
        threading.Thread(target=_serve, args=(sock,), name="plait-dump-server", daemon=True).start()
        atexit.register(_stop, path, os.getpid())
        return path


def stop_serving() -> None:
    """Remove this process's dump socket now (before an ``os._exit`` skips ``atexit``)."""
    path = _server.path
    if path is not None and _server.pid == os.getpid():
        _stop(path, _server.pid)


def _stop(path: Path, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child: the socket is its parent's
    try:
        path.unlink()
    except OSError:
        pass
    _sweep(path.parent)


def _sweep(folder: Path) -> None:
    """Remove the sockets of processes that are gone (a child killed by a signal, or ended
    by ``os._exit``, leaves its socket behind; its parent, which ends later, sweeps it)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid_text, _, ext = name.partition(".")
        if ext != "sock" or not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            try:
                (folder / name).unlink()
            except OSError:
                pass
        except OSError:
            pass


def _serve(sock: socket.socket) -> None:
    _asleep.note_service_thread()  # it never wakes a program's waits
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.settimeout(5)
                request = conn.recv(64).decode("ascii", "replace").strip()
                fmt = "json" if request == "json" else "text"
                records = _dump.snapshot()
                text = _dump.render(records, fmt)
                conn.sendall(text.encode("utf-8", "replace"))
            except OSError:
                continue


def _forget_after_fork() -> None:
    if _server.sock is not None:  # (a fork copies the listener: close the child's copy)
        _server.sock.close()
    _server.sock, _server.path, _server.pid = None, None, 0


os.register_at_fork(after_in_child=_forget_after_fork)


def request_dump(pid: int, fmt: str = "text", timeout: float = 10.0) -> str:
    """Ask process ``pid`` for its dump; :class:`DumpRequestError` says why it cannot."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise DumpRequestError(f"no process with pid {pid} (it is not running)") from None
    except PermissionError:
        raise DumpRequestError(
            f"process {pid} belongs to another user: plait dumps only this user's processes"
        ) from None
    path = socket_path(pid)
    if not path.exists():
        raise DumpRequestError(
            f"process {pid} is not serving dumps: run it under `plait run`, or with "
            f"PLAIT_DEBUG=1, or call plait.diagnostics.serve_dumps() in it"
        )
    info = path.lstat()
    if info.st_uid != os.getuid() or not stat.S_ISSOCK(info.st_mode):
        raise DumpRequestError(f"{path} is not this user's dump socket: refusing to use it")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(f"{fmt}\n".encode("ascii"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            raise DumpRequestError(
                f"process {pid} left a dump socket but does not answer on it (it is stuck "
                f"holding the GIL, or the socket is stale): {exc}"
            ) from None
        raise DumpRequestError(f"asking process {pid} for a dump failed: {exc}") from None
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")
