"""Shared-memory segments: named, mapped, reference-counted, swept after crashes.

A :class:`Segment` is a POSIX shared-memory object (``/dev/shm/plait_*`` on Linux) mapped
into this process. plait opens them with ``_posixshmem`` directly rather than through
``multiprocessing.shared_memory`` so that no resource-tracker process warns about segments
that another process legitimately removes.

Lifetime rules:

* A segment that carries one message (a large buffer) has one reader: the reader maps it
  and unlinks the name at once; the mapping -- and any NumPy array or ``memoryview`` built
  on it, without a copy -- stays valid until the last reference goes.
* A long-lived segment (a shared queue's ring) is unlinked by its owner -- the process
  that created it -- when the owner finalises; processes still attached keep their
  mapping (the kernel counts the mappings and frees the memory after the last one).
* Every name starts with a per-owner prefix, so whatever a crashed process left behind
  (a writer killed after it created a segment, a reader killed before it unlinked one) is
  removed by :func:`sweep` when the owner finalises.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import itertools
import mmap
import os
import secrets
import threading

__all__ = ["SHM_DIR", "Segment", "new_prefix", "sweep"]

SHM_DIR = "/dev/shm"
_counter = itertools.count()
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_lock = threading.Lock()


def new_prefix(kind: str) -> str:
    """A fresh name prefix owned by the calling process: ``plait_<kind><random>_``."""
    return f"plait_{kind}{secrets.token_hex(5)}_"


def _next_id() -> int:
    with _lock:
        return next(_counter)


class Segment:
    """One mapped shared-memory segment (create with ``size``, or open an existing name)."""

    __slots__ = ("__weakref__", "buf", "map", "name", "size")

    def __init__(
        self, name: str, size: int = 0, *, create: bool = False, populate: bool = True
    ) -> None:
        self.name = name
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if create:
                os.ftruncate(fd, max(size, 1))
            else:
                size = os.fstat(fd).st_size
            # A message segment is written or read in full: fault every page in at once.
            flags = mmap.MAP_SHARED | (_POPULATE if populate else 0)
            self.map = mmap.mmap(fd, max(size, 1), flags=flags)
        except BaseException:
            os.close(fd)
            if create:
                _unlink(name)
            raise
        os.close(fd)
        self.size = size
        self.buf = memoryview(self.map)

    @classmethod
    def create(cls, prefix: str, size: int) -> Segment:
        """A new segment named ``prefix<pid>_<n>``."""
        return cls(f"{prefix}{os.getpid()}_{_next_id()}", size, create=True)

    def unlink(self) -> None:
        """Remove the name (mappings stay valid until closed); idempotent."""
        _unlink(self.name)

    def close(self) -> None:
        """Unmap, if no exported view is alive; otherwise the mapping goes with the views."""
        try:
            self.buf.release()
            self.map.close()
        except BufferError:
            pass

    def __repr__(self) -> str:
        return f"<plait shm {self.name} {self.size} bytes>"


def _unlink(name: str) -> None:
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def sweep(prefix: str) -> list[str]:
    """Unlink every segment whose name starts with ``prefix``; return the names removed."""
    try:
        names = [n for n in os.listdir(SHM_DIR) if n.startswith(prefix)]
    except OSError:
        return []
    for name in names:
        _unlink(name)
    return names
