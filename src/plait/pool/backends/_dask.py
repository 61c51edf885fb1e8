"""``Pool(backend="dask")``: the pool's tasks on a Dask cluster (``distributed``).

Without ``address=`` the pool starts a ``distributed.LocalCluster`` of ``processes``
worker processes (one thread each, under nannies that restart a worker that dies) and
stops it with itself. Its scheduler is told ``allowed-failures=0`` so that a task whose
worker dies is reported at once (``KilledWorker``) and plait's own ``retries=`` decides
what happens next, as in the local pool; a cluster at ``address=`` keeps its own setting
(Dask's default re-runs such a task three times first).

Finished futures are found in waves (:mod:`._waves`): a wave reads the status of the
oldest futures in flight, with one done-callback at most (on the future it waits for), not
one per future -- Dask runs each callback in a coroutine and then on a thread pool, which
cost more than a tiny task.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import uuid
from typing import Any

from plait.pool._tasks import Task
from plait.pool.backends._remote import Outcome, RemoteEngine
from plait.pool.backends._run import run_payload
from plait.pool.backends._waves import WAVE_GATHER_S, WAVE_IDLE_S, WaveWatcher

__all__ = ["DaskEngine"]

log = logging.getLogger("plait.pool")

_CLOSE_TIMEOUT_S = 20.0
_ENDED = frozenset({"finished", "error", "cancelled"})  # a future's status once it ended
_LOST = object()  # a result lost with its worker since its future was seen finished


def _result_of(future: Any) -> Any:
    """A finished future's value (or its error), or ``_LOST`` if it is not finished now."""
    if future.status != "finished":
        return _LOST
    try:
        return future.result(timeout=_CLOSE_TIMEOUT_S)
    except Exception as exc:
        return _LOST if future.status != "finished" else exc


def _local_processes() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def local_cluster(workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` worker processes (one thread each) as
    plait runs one: a task whose worker dies fails at once (plait's ``retries=`` decides),
    and its HTTP servers take any free port."""
    dask: Any = importlib.import_module("dask")
    distributed: Any = importlib.import_module("distributed")
    config = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with dask.config.set(config):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
            scheduler_port=0,
            silence_logs=logging.ERROR,
        )


class DaskEngine(RemoteEngine):
    """Tasks as Dask futures: ``client.map(run_payload, payloads)``; see the module."""

    backend = "dask"

    def __init__(self, processes: int | None, address: str | None, connect_timeout: float) -> None:
        distributed: Any = importlib.import_module("distributed")

        self.cluster: Any = None
        self.client: Any = None
        self.address = address
        self.token = uuid.uuid4().hex[:12]
        self.wake = threading.Event()  # set by the one done-callback a wave waits on
        self.hooked: set[str] = set()  # keys of the futures that carry that callback
        self.watcher = WaveWatcher("plait-pool-dask-watch", self._wave, self.finished_many)
        if address is None:
            n = processes or _local_processes()
            self.cluster = local_cluster(n)
            try:
                self.client = distributed.Client(
                    self.cluster, timeout=connect_timeout, set_as_default=False
                )
            except BaseException:
                self.cluster.close(timeout=_CLOSE_TIMEOUT_S)
                raise
        else:
            try:
                self.client = distributed.Client(
                    address, timeout=connect_timeout, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(
                    f"could not reach the Dask scheduler at {address!r} within "
                    f"{connect_timeout:g} s ({exc}): check the address and that the "
                    "scheduler runs, or pass a longer connect_timeout="
                ) from exc
            n = processes or sum(self.client.nthreads().values()) or 1
        super().__init__(n)
        self.watcher.start()
        self.start_threads()

    @property
    def where(self) -> str:
        return "a dask worker"

    def _submit(self, tasks: list[Task]) -> None:
        keys = [f"plait-{self.token}-{task.id}-{task.requeues}" for task in tasks]
        if len(tasks) == 1:
            futures = [self.client.submit(run_payload, tasks[0].payload, key=keys[0])]
        else:
            futures = self.client.map(run_payload, [t.payload for t in tasks], key=keys)
        for task, future in zip(tasks, futures, strict=True):
            task.worker = future
        self.watcher.add(tasks)

    def _wave(self, futures: list[Any], idle: bool) -> list[Any]:
        """One wave (:mod:`._waves`): wait on the oldest future (``idle``) or the youngest
        of the wave, through one done-callback, then read every status."""
        wake = self.wake
        wake.clear()
        target = futures[0] if idle else futures[-1]
        if target.status not in _ENDED:
            if target.key not in self.hooked:
                self.hooked.add(target.key)
                target.add_done_callback(self._woken)
            if target.status not in _ENDED:  # (it may have ended as the callback went on)
                wake.wait(WAVE_IDLE_S if idle else WAVE_GATHER_S)
        return [f for f in futures if f.status in _ENDED]

    def _woken(self, future: Any) -> None:
        self.hooked.discard(future.key)
        self.wake.set()

    def _collect(self, tasks: list[Task]) -> list[Outcome]:
        killed_worker: Any = importlib.import_module("distributed").KilledWorker

        outcomes: list[Outcome] = [("cancelled", None)] * len(tasks)
        ready = [k for k, t in enumerate(tasks) if t.worker.status == "finished"]
        if ready:
            try:
                values = self.client.gather([tasks[k].worker for k in ready])
            except Exception:  # one was lost meanwhile (its worker died): one by one
                values = [_result_of(tasks[k].worker) for k in ready]
            for k, value in zip(ready, values, strict=True):
                if value is not _LOST:
                    failed = isinstance(value, BaseException)
                    outcomes[k] = ("failed", value) if failed else ("ok", value)
        for k, task in enumerate(tasks):
            future = task.worker
            status = future.status
            if status == "error":
                try:
                    error = future.exception()
                except Exception as exc:
                    error = exc
                crashed = isinstance(error, killed_worker)
                outcomes[k] = ("crashed" if crashed else "failed", error)
            elif outcomes[k][0] == "cancelled" and status != "cancelled":
                outcomes[k] = ("running", None)  # its result died with a worker: run again
                continue
            task.worker = None  # the engine may forget its result now
        return outcomes

    def _cancel(self, handles: list[Any]) -> None:
        futures = [h for h in handles if h is not None]
        if not futures:
            return
        try:
            self.client.cancel(futures, force=True)
        except Exception:
            log.debug("plait.Pool: cancelling dask futures failed", exc_info=True)

    def _shutdown_engine(self) -> None:
        self.watcher.stop()
        try:
            self.client.close(timeout=_CLOSE_TIMEOUT_S)
        finally:
            if self.cluster is not None:
                self.cluster.close(timeout=_CLOSE_TIMEOUT_S)
