"""Built-in progress for ``map``/``imap``: tqdm when installed (its ``auto`` flavour picks a
notebook widget or a terminal bar), else a plain line on stderr redrawn a few times a second.

``update`` is called from the pool's result thread; both bars tolerate that.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO

__all__ = ["PlainProgress", "Progress", "open_progress"]


class Progress(Protocol):
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """``desc: 1234/10000 (12%) 5678.9/s`` on one line, at most five redraws a second."""

    def __init__(self, total: int | None, desc: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._closed = False

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last_draw >= 0.2:
                self._last_draw = now
                self._draw(now, end="")

    def _draw(self, now: float, end: str) -> None:
        rate = self.done / max(now - self._start, 1e-9)
        if self.total:
            text = f"{self.done}/{self.total} ({100 * self.done // self.total}%)"
        else:
            text = str(self.done)
        try:
            self.stream.write(f"\r{self.desc}: {text} {rate:.1f}/s{end}")
            self.stream.flush()
        except (OSError, ValueError):  # stream closed under us: progress is best effort
            pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._draw(time.monotonic(), end="\n")


def open_progress(total: int | None, desc: str, *, use_tqdm: bool | None = None) -> Progress:
    """A progress bar for ``total`` items (``None``: unknown)."""
    if use_tqdm is not False:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if use_tqdm:
                raise
        else:
            bar: Any = tqdm(total=total, desc=desc, unit="task")
            return _TqdmProgress(bar)
    return PlainProgress(total, desc)


class _TqdmProgress:
    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._lock = threading.Lock()
        self._closed = False

    def update(self, n: int) -> None:
        with self._lock:
            if not self._closed:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._bar.close()
