"""``with plait.trace("out.json"):`` -- one recording session over a process tree.

The session checks the output path before anything runs, makes the parts folder next to it
(``out.json.parts/``), installs a :class:`~plait.trace.recorder.Recorder`, and leaves a
*marker* (``$TMPDIR/plait-trace-<uid>/<pid>.json``) naming the parts folder and the clock
origin. Every plait child (process strand, pool worker, ``plait.Process``) looks for its
parent's marker as it starts (``lifeline.child_started_hooks``: this works under every start
method, where an environment variable would not reach a fork server started earlier),
records into the same folder under its own pid, and leaves a marker of its own for its
children. On exit the session merges every part file into the Chrome trace and removes the
folder; a session that never gets there (a crash, SIGKILL) leaves the folder, which
``plait trace --html`` opens as a partial trace.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from types import TracebackType
from typing import Any

from plait._core.instruments import add_instrument, hooks, remove_instrument
from plait._errors import TraceOutputError
from plait._ipc import lifeline
from plait.trace.recorder import Recorder, active_recorder

__all__ = ["TraceOutputError", "parts_dir_for", "trace", "trace_span"]


def parts_dir_for(output: str) -> str:
    """The folder of part files that belongs to the trace ``output``."""
    return output + ".parts"


def _marker_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"plait-trace-{os.getuid()}")


def _marker_path(pid: int) -> str:
    return os.path.join(_marker_dir(), f"{pid}.json")


def _started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: /proc), so that a marker a crashed process
    left is not taken for that of a later process given the same pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _write_marker(parts: str, t0_ns: int, capacity: int) -> str:
    os.makedirs(_marker_dir(), mode=0o700, exist_ok=True)
    path = _marker_path(os.getpid())
    tmp = f"{path}.{time.monotonic_ns()}.tmp"
    info = {"parts": parts, "t0_ns": t0_ns, "capacity": capacity, "started": _started(os.getpid())}
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(tmp, path)
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def check_output(output: str) -> str:
    """``output`` made absolute, after checking that a trace can be written there."""
    if not isinstance(output, str | os.PathLike):
        raise TypeError(
            f"plait.trace() needs a file path for the trace (such as 'out.json'), "
            f"not {type(output).__name__} {output!r}"
        )
    path = os.path.abspath(os.fspath(output))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise TraceOutputError(f"cannot write the trace to {path!r}: it is a folder; name a file")
    if not os.path.isdir(folder):
        raise TraceOutputError(
            f"cannot write the trace to {path!r}: the folder {folder!r} does not exist; "
            f"create it or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        raise TraceOutputError(
            f"cannot write the trace to {path!r}: permission denied; choose a path you can write to"
        )
    return path


class trace:
    """Record a timeline of every strand, wait, lock and channel into ``output``.

    ``output`` is a Chrome trace event JSON file (open it in ui.perfetto.dev or
    chrome://tracing, or turn it into an offline page with ``plait trace --html``);
    with ``html=`` the page is written too. ``capacity`` bounds the events kept per
    process: beyond it the oldest are dropped and counted (``dropped``).
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        *,
        html: str | os.PathLike[str] | None = None,
        capacity: int = 200_000,
        interval: float = 0.1,
    ) -> None:
        self.output = check_output(output)  # type: ignore[arg-type]
        self.html = None if html is None else check_output(html)  # type: ignore[arg-type]
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 16:
            raise ValueError(f"capacity must be an int of at least 16 events, not {capacity!r}")
        self.capacity = capacity
        self.interval = interval
        self.parts = parts_dir_for(self.output)
        self.recorder: Recorder | None = None
        self.dropped = 0
        self._marker: str | None = None

    def __enter__(self) -> trace:
        if active_recorder(hooks.active) is not None:
            raise RuntimeError("plait.trace() is already recording in this process")
        if os.path.isdir(self.parts):  # left over by a run that crashed
            shutil.rmtree(self.parts, ignore_errors=True)
        try:
            os.makedirs(self.parts)
        except OSError as exc:
            raise TraceOutputError(
                f"cannot write the trace next to {self.output!r} ({exc}); choose a path "
                f"you can write to"
            ) from exc
        t0 = time.monotonic_ns()
        self.recorder = Recorder(
            self.parts, t0_ns=t0, capacity=self.capacity, interval=self.interval
        )
        self._marker = _write_marker(self.parts, t0, self.capacity)
        self.recorder.start()
        add_instrument(self.recorder)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording and write the trace (and the page); safe to call twice."""
        recorder = self.recorder
        if recorder is None:
            return
        self.recorder = None
        remove_instrument(recorder)
        recorder.stop()
        if self._marker is not None:
            _remove(self._marker)
        from plait.trace.export import load_parts, write_chrome

        data = load_parts(self.parts, complete=True)
        write_chrome(data, self.output)
        self.dropped = int(data["otherData"]["plait"]["dropped"])
        if self.html is not None:
            from plait.trace.html import write_html

            write_html(data, self.html)
        shutil.rmtree(self.parts, ignore_errors=True)


class trace_span:
    """Mark a named span of the calling strand on the timeline (free when not tracing)."""

    __slots__ = ("_recorder", "name")

    def __init__(self, name: str) -> None:
        self.name = str(name)
        self._recorder: Recorder | None = None

    def __enter__(self) -> trace_span:
        active = hooks.active
        if active:
            recorder = active_recorder(active)
            if recorder is not None:
                self._recorder = recorder
                recorder.span(self.name, True)
        return self

    def __exit__(self, *exc: object) -> None:
        recorder = self._recorder
        if recorder is not None:
            self._recorder = None
            recorder.span(self.name, False)

    async def __aenter__(self) -> trace_span:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)


# -- children ---------------------------------------------------------------------------


def _finish_child(recorder: Recorder, marker: str) -> None:
    remove_instrument(recorder)
    recorder.stop()
    _remove(marker)


def _record_if_parent_does(parent_pid: int) -> None:
    """In a starting plait child: record into the parent's parts folder when the parent
    traces (never raises: a child that cannot record still runs)."""
    try:
        with open(_marker_path(parent_pid), encoding="utf-8") as f:
            info: dict[str, Any] = json.load(f)
        parts = info["parts"]
        if not os.path.isdir(parts) or info.get("started") != _started(parent_pid):
            return  # (left by a crashed process whose pid is now another's)
        existing = active_recorder(hooks.active)
        if existing is not None:  # forked with the parent's recorder: it re-pointed itself
            _at_child_exit(existing.stop)
            return
        recorder = Recorder(
            parts, t0_ns=int(info["t0_ns"]), capacity=int(info["capacity"]), parent_pid=parent_pid
        )
        marker = _write_marker(parts, recorder.t0_ns, recorder.capacity)
        recorder.start()
        add_instrument(recorder)
        _at_child_exit(lambda: _finish_child(recorder, marker))
    except Exception:
        pass


def _at_child_exit(callback: Any) -> None:
    """Run ``callback`` as the child ends: multiprocessing's finalizers run in its
    children (which end with ``os._exit``, skipping atexit); atexit covers the rest.

    A child still in multiprocessing's bootstrap clears the finalizers registered so far
    and then runs its after-fork callbacks: the one registered here registers it again.
    """
    from multiprocessing import util

    util.Finalize(None, callback, exitpriority=100)
    util.register_after_fork(callback, lambda _: util.Finalize(None, callback, exitpriority=100))
    atexit.register(callback)


def _after_fork_in_child() -> None:
    recorder = active_recorder(hooks.active)
    if recorder is not None:
        recorder.forked()


lifeline.child_started_hooks.append(_record_if_parent_does)
os.register_at_fork(after_in_child=_after_fork_in_child)
