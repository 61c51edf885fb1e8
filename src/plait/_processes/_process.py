"""``plait.Process``: ``multiprocessing.Process`` with a result, a lifeline and a watcher.

It *is* a :class:`multiprocessing.process.BaseProcess` (so ``start``/``join``/``is_alive``/
``terminate``/``kill``/``close``, ``pid``/``ident``/``exitcode``/``name``/``daemon``/
``authkey``/``sentinel``, subclassing with ``run()`` and ``active_children()`` all keep
multiprocessing's semantics), with four differences that each fix a pitfall:

* The start method is plait's (``forkserver``, else ``spawn``; ``fork`` only when asked),
  not the platform default, which forks on Linux whatever threads are alive.
* What crosses to the child is pickled *at* ``start()`` with plait's pickler: lambdas,
  closures and ``__main__`` functions work, and an unpicklable argument raises
  :class:`plait.SerializationError` naming it, before any process exists.
* The child arms a lifeline first (it dies with its parent) and sends back what ``run()``
  returned or raised: ``result()`` returns it or re-raises with the remote traceback as
  ``__cause__``; a child killed by a signal makes ``result()`` raise ``WorkerCrashed``.
* One watcher thread reaps every child and reads every result (see ``_watcher.py``), so
  ``join`` never deadlocks on a large result and many threads may ``join`` at once.

``ProcessCall`` (the process strand of ``TaskGroup.spawn(on="process")``) is this same
class started in *quiet* mode: an exception goes back to the parent without being printed,
and SIGTERM (a cancelled task) raises :class:`plait.Cancelled` in the child so that its
``finally`` blocks run during the grace period before SIGKILL.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import io
import os
import pickle
import signal
import sys
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from multiprocessing import context as mp_context
from multiprocessing import process as mp_process
from multiprocessing.connection import Connection, Pipe
from multiprocessing.reduction import ForkingPickler
from types import FrameType
from typing import Any, cast

import cloudpickle

from plait._core import Strand, check_timeout, hooks, register, safepoint, unregister
from plait._errors import Cancelled, SerializationError, WorkerCrashed
from plait._ipc import serialize
from plait._ipc.context import StartMethod, default_start_method, get_context
from plait._ipc.ctrl_c import take_over
from plait._ipc.lifeline import install_in_child
from plait._processes._popen import WatchedPopen, popen_class
from plait._processes._result import RESULT_ERR, RESULT_OK, Outcome, write_message
from plait._processes._watcher import get_watcher

__all__ = ["Process"]

# Attributes that live only in the parent and never cross to the child.
_PARENT_ONLY = frozenset(
    {"_plait_future", "_plait_popen", "_plait_strand", "_plait_writer", "_popen"}
)


class _ChildPickler(ForkingPickler):
    """multiprocessing's pickler (connections, locks, queues cross as they should) that
    ships lambdas, closures and ``__main__`` functions by value, as plait's pickler does."""

    reducer_override = serialize._Pickler.reducer_override


class _ChildCloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """The fallback: cloudpickle (local classes, anything by value) that still knows
    multiprocessing's reducers, so a connection inside never crosses as a bare fd number."""

    dispatch_table = ChainMap(
        ForkingPickler._extra_reducers,  # type: ignore[attr-defined]
        cloudpickle.Pickler.dispatch_table,
    )


def _pickle_for_child(obj: Any) -> bytes:
    buf = io.BytesIO()
    try:
        _ChildPickler(buf, serialize.PROTOCOL).dump(obj)
    except SerializationError:
        raise  # plait's own object refused (and named) what it holds: nothing else will do
    except Exception:
        buf = io.BytesIO()
        _ChildCloudPickler(buf, protocol=serialize.PROTOCOL).dump(obj)
    return buf.getvalue()


def _rebuild_process(writer: Connection, label: str, quiet: bool, payload: bytes) -> Process:
    """In the child: the Process object as it was in the parent at ``start()``.

    The result pipe travels outside the payload, so that a payload which fails to load here
    (a module the child cannot import, a ``__setstate__`` that raises) is reported to the
    parent as what it is rather than as a bare exit code.
    """
    if quiet:  # (first thing: a Ctrl-C kept since the start is dropped, see ctrl_c)
        take_over("parent")
    try:
        cls, state = pickle.loads(payload)
    except BaseException as exc:
        error = SerializationError(
            f"the child process could not unpickle {label} and what it needs "
            f"({type(exc).__name__}: {exc}); make sure the child can import them"
        )
        error.__cause__ = exc
        try:
            write_message(writer.fileno(), RESULT_ERR, _pack_error(error))
        except OSError:
            pass
        if quiet:  # delivered to the parent: no traceback on the child's stderr
            os._exit(1)
        raise
    obj: Process = cls.__new__(cls)
    obj.__dict__.update(state)
    obj._plait_writer = writer
    return obj


def _describe_callable(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return f"{name}()" if name else repr(fn)


class Process(mp_process.BaseProcess):
    """Drop-in for :class:`multiprocessing.Process`, plus :meth:`result`.

    ``exitcode`` keeps multiprocessing's meaning: 0 on return, 1 when ``run()`` raised (the
    traceback is printed in the child, as multiprocessing does), ``-N`` when killed by
    signal ``N``.
    """

    _popen: Any  # multiprocessing's, undeclared in its stubs
    # set_start_method()'s choice (a context's Process class sets its own); None: plait's.
    _plait_default_method: StartMethod | None = None
    # Its child takes over its Ctrl-C itself (see plait._ipc.ctrl_c).
    _plait_takes_ctrl_c = True

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        super().__init__(group, target, name, args, kwargs or {}, daemon=daemon)
        self._plait_requested_method: StartMethod | None = None
        self._plait_quiet = False
        self._plait_future: concurrent.futures.Future[Any] | None = None

    # -- what the child runs ---------------------------------------------------------------

    def run(self) -> Any:
        """Call the target; its return value is what :meth:`result` returns."""
        if self._target:  # type: ignore[attr-defined]
            return self._target(*self._args, **self._kwargs)  # type: ignore[attr-defined]
        return None

    def _bootstrap(self, *args: Any, **kwargs: Any) -> int:
        # In the child, before multiprocessing's bootstrap: arm the lifeline, and route
        # what run() returns or raises to the parent. (A process strand's Ctrl-C is its
        # parent's from the start: under fork, nothing was unpickled to say so before.)
        if self._plait_quiet:
            take_over("parent")
        install_in_child(self._plait_parent_pid, start_method=self._plait_method)
        writer = self.__dict__.pop("_plait_writer")
        self.run = _Reporter(self.run, writer, self._plait_label, self._plait_quiet)  # type: ignore[method-assign]
        code: int = super()._bootstrap(*args, **kwargs)  # type: ignore[misc]
        return code

    # -- starting --------------------------------------------------------------------------

    @staticmethod
    def _Popen(process_obj: Process) -> WatchedPopen:
        method = process_obj._plait_method
        get_context(method)  # configures the fork server's preload on first use
        popen: WatchedPopen = popen_class(method)(process_obj)
        return popen

    def start(self) -> None:
        """Start the child (``multiprocessing.Process.start``), pickling what it needs now.

        Raises :class:`plait.SerializationError` naming an object that cannot cross.
        """
        if self._popen is not None:
            raise AssertionError("cannot start a process twice")
        method = (
            self._plait_requested_method or self._plait_default_method or default_start_method()
        )
        self._plait_method: StartMethod = method
        self._start_method = method  # the child's multiprocessing default, as in the parent
        self._plait_parent_pid = os.getpid()
        target = self._target  # type: ignore[attr-defined]
        if type(self).run is not Process.run or target is None:
            self._plait_label = f"{type(self).__qualname__}.run()"
        else:
            self._plait_label = _describe_callable(target)
        reader, writer = Pipe(duplex=False)
        self._plait_writer = writer
        try:
            super().start()
        except BaseException:
            reader.close()
            raise
        finally:
            self.__dict__.pop("_plait_writer", None)
            writer.close()
        _join_children_first_at_exit()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self._plait_future = future
        popen = cast(WatchedPopen, self._popen)
        self._plait_popen = popen
        strand: Strand | None = None
        if not self._plait_quiet:  # a process call is registered as its task by the group
            strand = Strand("process", self.name)
            strand.pid = popen.pid
            strand.state = "running"
            register(strand)
            if hooks.active:
                hooks.spawned(strand)
                hooks.started(strand)
        self._plait_strand = strand
        # The callback holds what it settles, never the Process: a dropped (or closed)
        # Process is freed at once, even while the watcher still holds the callback.
        on_done = functools.partial(_settle, future, strand, self._plait_label, popen)
        get_watcher().watch(popen, reader, self._plait_label, on_done)

    def __reduce__(self) -> tuple[Any, ...]:
        if mp_context.get_spawning_popen() is None:
            raise TypeError(
                f"{type(self).__name__} objects cross to a child only while being started; "
                "pass its pid, or a plait queue, instead"
            )
        state = {k: v for k, v in self.__dict__.items() if k not in _PARENT_ONLY}
        payload = self._plait_payload(state)
        args = (self._plait_writer, self._plait_label, self._plait_quiet, payload)
        return (_rebuild_process, args)

    def _plait_payload(self, state: dict[str, Any]) -> bytes:
        obj = (type(self), state)
        try:
            return _pickle_for_child(obj)
        except Exception as exc:
            first = exc
        # Name the culprit by the part it sits in: the target, its arguments, or the rest.
        label = self._plait_label
        parts: list[tuple[Any, str]] = [
            (state.get("_target"), f"the target of {self.name}"),
            (state.get("_args"), f"the arguments of {label}"),
            (state.get("_kwargs"), f"the keyword arguments of {label}"),
        ]
        rest = {k: v for k, v in state.items() if k not in ("_target", "_args", "_kwargs")}
        parts.append((type(self), f"the class {type(self).__qualname__}"))
        parts.append((rest, f"the attributes of {self.name}"))
        for part, what in parts:
            try:
                _pickle_for_child(part)
            except SerializationError:
                raise  # it names the culprit already
            except Exception as exc:
                try:
                    serialize.dumps(part, what=what)  # raises SerializationError naming it
                except SerializationError as named:
                    if isinstance(exc, RuntimeError):  # multiprocessing's refusal says why
                        raise SerializationError(
                            f"cannot send {what} to the child process: {exc}",
                            path=named.path,
                            culprit=named.culprit,
                        ) from exc
                    raise
                raise SerializationError(  # plait's pickler took it alone: say what failed
                    f"cannot send {what} to the child process: {type(exc).__name__}: {exc}"
                ) from exc
        raise SerializationError(
            f"cannot send the process {self.name} to the child: {type(first).__name__}: {first}"
        ) from first

    # -- the result ------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the child and return what ``run()`` returned, or raise what it raised.

        The remote traceback is the exception's ``__cause__``; a child that died without a
        result (a signal, ``os._exit``) raises :class:`plait.WorkerCrashed`. Raises
        ``TimeoutError`` if the child is still running after ``timeout`` seconds.
        """
        future = self._plait_started_future()
        if not future.done():
            popen = self._plait_popen
            if popen.wait(check_timeout(timeout)) is None:
                raise TimeoutError(f"{self.name} is still running after {timeout} s")
        # The exit code is published just before the outcome: at most a moment to wait.
        return future.result()

    async def async_result(self, timeout: float | None = None) -> Any:
        """:meth:`result` for coroutines."""
        future = self._plait_started_future()
        if not future.done():
            popen = self._plait_popen
            if await popen.async_wait(check_timeout(timeout)) is None:
                raise TimeoutError(f"{self.name} is still running after {timeout} s")
        return await asyncio.wrap_future(future)

    async def async_join(self, timeout: float | None = None) -> None:
        """:meth:`join` for coroutines (as ``join``, a timeout below zero only looks)."""
        self._check_closed()  # type: ignore[attr-defined]
        if self._popen is None:
            raise AssertionError("can only join a started process")
        if isinstance(timeout, int | float) and timeout < 0:
            timeout = 0
        if await self._plait_popen.async_wait(check_timeout(timeout)) is not None:
            self.join(0)  # lets multiprocessing forget the child, as join() does

    def _plait_started_future(self) -> concurrent.futures.Future[Any]:
        future = self._plait_future
        if future is None:
            raise RuntimeError(f"{self.name} has not been started: call start() before result()")
        return future

    def _plait_use(self, *, method: StartMethod | None, quiet: bool) -> None:
        """Set how :meth:`start` starts this process (used by process calls)."""
        if method is not None:
            get_context(method)  # validates the name
        self._plait_requested_method = method
        self._plait_quiet = quiet


def _settle(
    future: concurrent.futures.Future[Any],
    strand: Strand | None,
    label: str,
    popen: WatchedPopen,
    outcome: Outcome,
) -> None:
    """Settle a child's future from what it sent (on the watcher thread, after the exit
    code is published: ``join()`` has returned and ``close()`` may have run)."""
    error: BaseException | None = None
    if outcome is None:
        error = WorkerCrashed(pid=popen.pid, exitcode=popen.returncode, task=label)
        if popen.returncode is not None and popen.returncode > 0:
            error.message += (
                " before reporting a result (sys.exit() in it, or a failure while the child"
                " imported the main module: see the child's traceback on stderr; a main"
                " module that starts processes at import time needs"
                " `if __name__ == '__main__':`)"
            )
            error.args = (error.message,)
    elif outcome[0] != "ok":
        error = outcome[1]
    if strand is not None:
        unregister(strand)
        if hooks.active:
            hooks.exited(strand, error)
    if error is None:
        assert outcome is not None
        future.set_result(outcome[1])
    else:
        future.set_exception(error)


def _join_children_first_at_exit() -> None:
    """Keep :func:`_join_children_at_exit` the next exit hook to run.

    multiprocessing joins children at exit *before* it releases what they share; but an exit
    hook registered later (``weakref.finalize`` of an object promoted while pickling the
    arguments) runs earlier, and could release a shared lock before a child that was never
    joined has even unpickled it. Re-registering after every start puts the join first.
    """
    atexit.unregister(_join_children_at_exit)
    atexit.register(_join_children_at_exit)


def _join_children_at_exit() -> None:
    # What multiprocessing's own exit hook does, done first (see above). A process strand
    # still running now has no group left to stop it (one was started as a Ctrl-C unwound
    # its spawn): it is stopped as its group would have (SIGTERM: its ``finally`` blocks
    # run), not waited for.
    # A child another thread closes meanwhile (a warm pool's reaper closes a worker that
    # has left) raises ValueError: it has exited and been reaped, so nothing is left to do.
    for child in mp_process.active_children():
        if child.daemon or getattr(child, "_plait_quiet", False):
            with contextlib.suppress(ValueError):
                child.terminate()
    for child in mp_process.active_children():
        with contextlib.suppress(ValueError):
            child.join()


class _Terminated(Cancelled):
    """Raised in a process call's main thread by SIGTERM (its task was cancelled)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Never inside one of plait's critical sections (a shared lock's bookkeeping, a
    # ring's push): there it waits for the section to end (see ``_core.safepoint``); nor
    # in the frame of a hot path marked to be waited out (``_sync._xproc.defers``); nor
    # inside this handler itself: a SIGTERM handled while the handler runs (it waits for
    # the thread it starts) would raise through it into the frame it interrupted -- a
    # shared semaphore's fast path holding the robust mutex, held for ever then.
    global _deferrals
    if _delivered:
        return  # (already unwinding: one cancellation is enough)
    xproc = sys.modules.get("plait._sync._xproc")
    if _in_this_handler(frame) or (xproc is not None and xproc.defers(frame)):
        # that frame returns soon: the signal comes again then (1 ms, backing off)
        delay = min(0.05, 0.001 * 2**_deferrals)
        _deferrals += 1
        _send_again_later(signum, delay)
        return
    _deferrals = 0
    safepoint.deliver(_terminated)


_deferrals = 0
_delivered = False  # the cancellation was raised; later SIGTERMs change nothing


def _in_this_handler(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code is _raise_terminated.__code__:
            return True
        frame = frame.f_back
    return False


def _send_again_later(signum: int, delay: float) -> None:
    threading.Thread(target=_send_again, args=(signum, delay), daemon=True).start()


def _send_again(signum: int, delay: float) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signum)


def _terminated() -> None:
    global _delivered
    _delivered = True
    raise _Terminated("terminated by the parent process (SIGTERM)")


def _let_go_of_shared() -> None:
    """The process ends, cancelled: give back the shared units it still holds (a
    cancellation that landed entering or leaving a ``with`` block, or a bare acquire)."""
    xproc = sys.modules.get("plait._sync._xproc")
    if xproc is not None:
        xproc.let_go_of_mine()


class _Reporter:
    """Runs in the child in place of ``run``: sends its outcome to the parent.

    In a process call (quiet), SIGTERM raises :class:`plait.Cancelled` in the main thread,
    so ``finally`` blocks and ``with`` exits run during the grace period before SIGKILL;
    then the child dies of SIGTERM as asked. A drop-in ``Process`` keeps multiprocessing's
    behaviour: SIGTERM ends it at once.
    """

    __slots__ = ("label", "quiet", "run", "writer")

    def __init__(self, run: Callable[[], Any], writer: Connection, label: str, quiet: bool) -> None:
        self.run = run
        self.writer = writer
        self.label = label
        self.quiet = quiet

    def __call__(self) -> None:
        if self.quiet:
            signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            try:
                if not self.quiet:  # (here, so a Ctrl-C kept since the start is reported)
                    take_over("own")
                value = self.run()
            except _Terminated:
                self._die_of_sigterm()
                raise  # pragma: no cover - not reached
            except BaseException as exc:
                self._restore_sigterm()
                if exc.__traceback__ is not None:  # hide this frame from the traceback
                    exc.__traceback__ = exc.__traceback__.tb_next
                self._send(RESULT_ERR, _pack_error(exc))
                if self.quiet and not isinstance(exc, SystemExit):
                    raise SystemExit(1) from None
                raise
            self._restore_sigterm()
            try:
                data = serialize.dumps(value, what=f"the result of {self.label}")
            except SerializationError as exc:
                self._send(RESULT_ERR, _pack_error(exc))
            else:
                self._send(RESULT_OK, data)
        finally:
            self.writer.close()

    def _restore_sigterm(self) -> None:
        if self.quiet:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _die_of_sigterm(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (a second one changes nothing)
        _let_go_of_shared()
        self.writer.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(128 + signal.SIGTERM)  # pragma: no cover - the signal ends us first

    def _send(self, tag: bytes, data: bytes) -> None:
        try:
            write_message(self.writer.fileno(), tag, data)
        except OSError:  # the parent is gone; the lifeline ends this process
            pass


def _pack_error(exc: BaseException) -> bytes:
    return serialize.dumps(serialize.pack_error(exc), what="an exception")
