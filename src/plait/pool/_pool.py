"""``plait.Pool``: ``multiprocessing.Pool``'s API and a ``concurrent.futures.Executor``.

Every call serialises its arguments where it is made (an unpicklable argument raises
:class:`plait.SerializationError` there, naming it, and nothing queued before is lost),
then hands tasks to the :class:`~plait.pool._engine.Engine`.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

from plait._ipc.context import StartMethod
from plait._ipc.serialize import dumps
from plait.pool._backpressure import Gate
from plait.pool._chunking import Source, map_chunksize
from plait.pool._engine import Engine, SourceEntry
from plait.pool._progress import Progress, open_progress
from plait.pool._protocol import HEADER, KIND_CALL, STAR_ARGS, STAR_KW, STAR_ONE
from plait.pool._results import AsyncResult, IMapIterator
from plait.pool._tasks import FutureSink, IterSink, ListSink, Task

__all__ = ["Pool", "PoolStatistics"]

T = TypeVar("T")


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _default_processes() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool (see :meth:`Pool.statistics`)."""

    state: str
    processes: int
    workers_alive: int
    tasks_queued: int
    tasks_running: int
    tasks_outstanding: int
    completed: int
    crashed: int
    timed_out: int
    retried: int
    workers_replaced: int


class Pool(Executor):
    """A process pool that never hangs: ``multiprocessing.Pool`` and ``Executor`` in one.

    ``Pool(processes=None, initializer=None, initargs=(), maxtasksperchild=None,
    context=None)`` is ``multiprocessing.Pool``'s signature; the keyword-only options add:

    * ``max_memory_per_child``: replace a worker whose RSS passes this many bytes;
    * ``concurrency``: coroutine functions run in each worker's own event loop, this many
      at once per worker (processes x coroutines);
    * ``max_pending``: ``submit``/``apply_async`` wait while this many tasks are unfinished;
    * ``retries``: re-run a task whose worker died this many times before failing it;
    * ``task_timeout``: seconds a task may run; past it its worker is killed and replaced
      and only that task fails (``TimeoutError``);
    * ``progress``: default for the ``progress=`` option of ``map``/``imap``;
    * ``start_method``: ``"forkserver"`` (default), ``"spawn"`` or ``"fork"``;
    * ``grace``: seconds ``terminate()`` lets workers exit on SIGTERM before SIGKILL.

    Leaving a ``with`` block normally waits for submitted work (like an ``Executor``);
    leaving it by an exception terminates (like ``multiprocessing.Pool``).
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        max_memory_per_child: int | None = None,
        concurrency: int = 1,
        max_pending: int | None = None,
        retries: int = 0,
        task_timeout: float | None = None,
        progress: bool = False,
        start_method: StartMethod | None = None,
        grace: float = 1.0,
    ) -> None:
        if processes is None:
            processes = _default_processes()
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise ValueError(f"Number of processes must be at least 1, not {processes!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, not {initializer!r}")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int) or maxtasksperchild < 1
        ):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries!r}")
        if context is not None and start_method is None:
            start_method = context.get_start_method()
        self._processes = processes
        self._retries = retries
        self._task_timeout = task_timeout
        self._progress = progress
        self._gate = None if max_pending is None else Gate(max_pending)
        self._engine = Engine(
            processes=processes,
            initializer=initializer,
            initargs=tuple(initargs),
            maxtasksperchild=maxtasksperchild,
            max_memory_per_child=max_memory_per_child,
            concurrency=concurrency,
            start_method=start_method,
            grace=grace,
        )
        # Workers die with the pool even when nobody calls close()/terminate().
        self._finalizer = weakref.finalize(self, self._engine.terminate)

    # -- helpers ---------------------------------------------------------------------------
    def _check(self, fn: Any) -> None:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        self._engine.check_open()

    def _payload(self, task_id: int, fn: Any, items: list[Any], star: int, timeout: Any) -> bytes:
        body = dumps((fn, items, star, timeout), what=f"the arguments of {_fn_name(fn)}()")
        return HEADER.pack(task_id, KIND_CALL) + body

    def _opts(self, retries: int | None, task_timeout: float | None) -> tuple[int, float | None]:
        return (
            self._retries if retries is None else retries,
            self._task_timeout if task_timeout is None else task_timeout,
        )

    def _progress_bar(self, flag: bool | None, total: int | None, fn: Any) -> Progress | None:
        if not (self._progress if flag is None else flag):
            return None
        return open_progress(total, _fn_name(fn))

    # -- one call --------------------------------------------------------------------------
    def _submit_one(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
        gated: bool = True,
    ) -> Future[Any]:
        self._check(fn)
        retries, timeout = self._opts(retries, task_timeout)
        task_id = self._engine.new_id()
        payload = self._payload(task_id, fn, [(tuple(args), dict(kwargs))], STAR_KW, timeout)
        gate = self._gate if gated else None
        if gate is not None:
            if self._engine.in_result_thread():
                gate.force()  # a callback submitting: waiting here would deadlock
            else:
                gate.acquire()
        future: Future[Any] = Future()
        sink = FutureSink(future, callback, error_callback, gate.release if gate else None)
        task = Task(
            task_id,
            payload,
            (0,),
            sink,
            label=None,  # described from the payload if it is ever needed (a crash)
            retries=retries,
            timeout=timeout,
        )
        try:
            self._engine.enqueue((task,))
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        return future

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """``Executor.submit``: run ``fn(*args, **kwargs)`` in a worker; a Future."""
        return self._submit_one(fn, args, kwargs)

    def apply_async(
        self,
        func: Callable[..., T],
        args: Sequence[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[T]:
        """``multiprocessing.Pool.apply_async``; callbacks run in the pool's result thread."""
        future = self._submit_one(
            func,
            args,
            kwds or {},
            callback,
            error_callback,
            retries=retries,
            task_timeout=task_timeout,
        )
        return AsyncResult(future, self._engine.forbid_wait_here)

    def apply(
        self,
        func: Callable[..., T],
        args: Sequence[Any] = (),
        kwds: dict[str, Any] | None = None,
        *,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> T:
        """``multiprocessing.Pool.apply``: run in a worker and wait for the result."""
        return self.apply_async(func, args, kwds, retries=retries, task_timeout=task_timeout).get()

    # -- many calls ------------------------------------------------------------------------
    def _map_future(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        star: int,
        chunksize: int | None,
        callback: Callable[[Any], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> Future[list[Any]]:
        self._check(fn)
        retries, timeout = self._opts(retries, task_timeout)
        data = items if isinstance(items, list | tuple) else list(items)
        size = map_chunksize(len(data), self._processes) if chunksize is None else chunksize
        if size < 1:
            raise ValueError(f"chunksize must be at least 1, not {chunksize!r}")
        label = f"{_fn_name(fn)}()"
        future: Future[list[Any]] = Future()
        sink = ListSink(
            len(data), future, callback, error_callback, self._progress_bar(progress, len(data), fn)
        )
        # Each chunk is queued as soon as it is pickled, so workers start while later
        # chunks are still being pickled. If one will not pickle, the call raises and
        # its earlier chunks are withdrawn; nothing submitted before is touched.
        try:
            for first in range(0, len(data), size):
                chunk = list(data[first : first + size])
                task_id = self._engine.new_id()
                payload = self._payload(task_id, fn, chunk, star, timeout)
                task = Task(
                    task_id,
                    payload,
                    range(first, first + len(chunk)),
                    sink,
                    label=label,
                    retries=retries,
                    timeout=timeout,
                )
                self._engine.enqueue((task,))
        except BaseException:
            sink.cancel()
            self._engine.withdraw(sink)
            raise
        return future

    def map(  # type: ignore[override]
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        *more: Any,
        chunksize: int | None = None,
        timeout: float | None = None,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> list[T]:
        """Both faces' ``map``, returning a list (which iterates like Executor's iterator).

        ``map(func, iterable, chunksize)`` as ``multiprocessing.Pool``; ``map(fn, xs, ys,
        timeout=, chunksize=)`` as ``Executor`` (several iterables are zipped; ``timeout``
        bounds the whole call). ``chunksize=None`` picks one (tiny tasks are batched).
        """
        if len(more) == 1 and (more[0] is None or isinstance(more[0], int)):
            chunksize = more[0]
            more = ()
        if more:
            future = self._map_future(
                func,
                zip(iterable, *more, strict=False),
                STAR_ARGS,
                chunksize,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            )
        else:
            future = self._map_future(
                func,
                iterable,
                STAR_ONE,
                chunksize,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            )
        return AsyncResult(future, self._engine.forbid_wait_here).get(timeout)

    def map_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[list[T]]:
        return AsyncResult(
            self._map_future(
                func,
                iterable,
                STAR_ONE,
                chunksize,
                callback,
                error_callback,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            ),
            self._engine.forbid_wait_here,
        )

    def starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> list[T]:
        return self.starmap_async(
            func,
            iterable,
            chunksize,
            progress=progress,
            retries=retries,
            task_timeout=task_timeout,
        ).get()

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> AsyncResult[list[T]]:
        items = [tuple(args) for args in iterable]
        return AsyncResult(
            self._map_future(
                func,
                items,
                STAR_ARGS,
                chunksize,
                callback,
                error_callback,
                progress=progress,
                retries=retries,
                task_timeout=task_timeout,
            ),
            self._engine.forbid_wait_here,
        )

    def _imap(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        star: int,
        chunksize: int | None,
        ordered: bool,
        progress: bool | None,
        retries: int | None,
        task_timeout: float | None,
    ) -> IMapIterator[Any]:
        self._check(fn)
        if chunksize is not None and chunksize < 1:
            raise ValueError(f"chunksize must be at least 1, not {chunksize!r}")
        retries, timeout = self._opts(retries, task_timeout)
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        window = max(4, 4 * self._processes)
        source = Source(
            iter(iterable),
            fixed_chunksize=chunksize,
            window=window,
            limit=None if total is None else map_chunksize(total, self._processes),
        )
        engine = self._engine
        iterator: IMapIterator[Any] = IMapIterator(
            ordered, lambda: engine.source_consumed(source), engine.forbid_wait_here
        )
        bar = self._progress_bar(progress, total, fn)
        sink = IterSink(iterator, bar)

        iterator_ref = weakref.ref(iterator)  # the engine must not keep the iterator alive

        def on_length(length: int) -> None:
            it = iterator_ref()
            if it is not None:
                it._set_length(length)
            sink.set_length(length)

        def build(items: list[Any]) -> bytes:
            return dumps((fn, items, star, timeout), what=f"the arguments of {_fn_name(fn)}()")

        entry = SourceEntry(
            source,
            sink,
            build,
            on_length,
            label=f"{_fn_name(fn)}()",
            retries=retries,
            timeout=timeout,
        )
        engine.add_source(entry)
        weakref.finalize(iterator, engine.drop_source, entry)
        return iterator

    def imap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> IMapIterator[T]:
        """Results in input order, as they come; the input is read a bounded window ahead."""
        return self._imap(
            func, iterable, STAR_ONE, chunksize, True, progress, retries, task_timeout
        )

    def imap_unordered(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool | None = None,
        retries: int | None = None,
        task_timeout: float | None = None,
    ) -> IMapIterator[T]:
        """Results in completion order; the input is read a bounded window ahead."""
        return self._imap(
            func, iterable, STAR_ONE, chunksize, False, progress, retries, task_timeout
        )

    # -- async faces -----------------------------------------------------------------------
    async def async_submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[T]:
        """Submit from a coroutine: waits (without blocking the loop) for ``max_pending``
        room, then returns an awaitable future of the result."""
        if self._gate is not None:
            self._check(fn)
            await self._gate.async_acquire()
            try:
                future = self._submit_one(fn, args, kwargs, gated=False)
            except BaseException:
                self._gate.release()
                raise
            future.add_done_callback(lambda _f: self._gate.release() if self._gate else None)
        else:
            future = self._submit_one(fn, args, kwargs)
        return asyncio.wrap_future(future)

    async def async_apply(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await pool.async_apply(fn, *args, **kwargs)``: the result, from a coroutine."""
        return await (await self.async_submit(func, *args, **kwargs))

    async def async_map(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> list[T]:
        return await asyncio.wrap_future(
            self._map_future(func, iterable, STAR_ONE, chunksize, **options)
        )

    async def async_starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        **options: Any,
    ) -> list[T]:
        items = [tuple(args) for args in iterable]
        return await asyncio.wrap_future(
            self._map_future(func, items, STAR_ARGS, chunksize, **options)
        )

    def async_imap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> AsyncIterator[T]:
        """``async for r in pool.async_imap(fn, xs)``: results in order."""
        return self.imap(func, iterable, chunksize, **options).__aiter__()

    def async_imap_unordered(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> AsyncIterator[T]:
        """``async for r in pool.async_imap_unordered(fn, xs)``: results as they finish."""
        return self.imap_unordered(func, iterable, chunksize, **options).__aiter__()

    async def async_join(self) -> None:
        """:meth:`join` from a coroutine, without blocking its loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.join)

    async def async_shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """:meth:`shutdown` from a coroutine, without blocking its loop."""
        if cancel_futures:
            self._engine.cancel_pending()
        self.close()
        if wait:
            await self.async_join()

    async def async_terminate(self) -> None:
        """:meth:`terminate` from a coroutine (it waits up to ``grace`` for workers)."""
        await asyncio.get_running_loop().run_in_executor(None, self.terminate)

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """No new work; workers exit once what was submitted is done."""
        self._engine.close()

    def terminate(self) -> None:
        """Stop now: workers are killed; unfinished tasks fail with ``ClosedError``."""
        self._finalizer()

    def join(self) -> None:
        """Wait for the workers to exit; call :meth:`close` or :meth:`terminate` first."""
        self._engine.join()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``Executor.shutdown``: close; drop work not started if ``cancel_futures``."""
        if cancel_futures:
            self._engine.cancel_pending()
        self.close()
        if wait:
            self.join()

    def __enter__(self) -> Pool:
        self._engine.check_open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            self.join()
        else:
            self.terminate()

    def statistics(self) -> PoolStatistics:
        engine = self._engine
        with engine.lock:
            running = sum(len(w.inflight) for w in engine.workers.values())
            return PoolStatistics(
                state=engine.state,
                processes=self._processes,
                workers_alive=len(engine.workers),
                tasks_queued=len(engine.pending),
                tasks_running=running,
                tasks_outstanding=engine.outstanding,
                completed=engine.stats["completed"],
                crashed=engine.stats["crashed"],
                timed_out=engine.stats["timed_out"],
                retried=engine.stats["retried"],
                workers_replaced=engine.stats["replaced"],
            )

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for diagnostics and tests)."""
        with self._engine.lock:
            return [w.pid for w in self._engine.workers.values()]

    def __repr__(self) -> str:
        return f"<plait.Pool state={self._engine.state} processes={self._processes}>"

    def __reduce__(self) -> Any:
        raise NotImplementedError("a pool cannot be passed to another process")
