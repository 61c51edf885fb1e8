"""``Pool(backend="ray")``: the pool's tasks as Ray tasks.

Without ``address=`` the pool starts a local Ray instance of ``processes`` CPUs (unless
this process is already connected to one) and shuts it down with itself. Ray is told not
to re-run a task whose worker died (``max_retries=0``): plait's ``retries=`` decides, as
in the local pool.

Results are found in waves (:mod:`._waves`): the watcher thread calls ``ray.wait`` on the
oldest refs in flight and hands whatever finished to the result thread in one go, which
fetches their replies with one ``ray.get``. (An ``ObjectRef.future()`` per task, with its
callback, cost Ray more CPU than a tiny task itself.)
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from typing import Any

from plait.pool._tasks import Task
from plait.pool.backends._remote import Outcome, RemoteEngine
from plait.pool.backends._run import run_payload
from plait.pool.backends._waves import WAVE_GATHER_S, WAVE_IDLE_S, WaveWatcher

__all__ = ["RayEngine"]

log = logging.getLogger("plait.pool")


def _probe(address: str, seconds: float) -> None:
    """Fail within ``seconds`` when a ``[ray://]host:port`` address refuses connections
    (other forms, such as ``"auto"``, are left to Ray)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), seconds).close()
    except OSError as exc:
        raise ConnectionError(
            f"could not reach the Ray cluster at {address!r} within {seconds:g} s ({exc}): "
            "check the address and that the cluster runs, or pass a longer connect_timeout="
        ) from exc


def _local_processes() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class RayEngine(RemoteEngine):
    """Tasks as Ray object refs of ``run_payload``; see the module docstring."""

    backend = "ray"

    def __init__(self, processes: int | None, address: str | None, connect_timeout: float) -> None:
        ray: Any = importlib.import_module("ray")
        self.ray = ray
        self.started = False
        if address is not None:
            _probe(address, connect_timeout)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            }
            if address is None:
                kwargs["num_cpus"] = processes or _local_processes()
            else:
                kwargs["address"] = address
            self._init(kwargs, address)
            self.started = True
        n = processes or int(ray.cluster_resources().get("CPU", 1)) or 1
        self.remote_fn = ray.remote(num_cpus=1, max_retries=0)(run_payload)
        self.watcher = WaveWatcher("plait-pool-ray-watch", self._wave, self.finished_many)
        super().__init__(n)
        self.watcher.start()
        self.start_threads()

    def _init(self, kwargs: dict[str, Any], address: str | None) -> None:
        """``ray.init`` in the calling thread: Ray binds its cluster client to the thread
        that connected (from a helper thread, later calls hang). An unreachable address
        was found out before (:func:`_probe`): Ray itself retries for minutes."""
        try:
            self.ray.init(**kwargs)
        except Exception as exc:
            if address is None:
                raise
            raise ConnectionError(
                f"could not reach the Ray cluster at {address!r}: {exc}"
            ) from exc

    @property
    def where(self) -> str:
        return "a ray worker"

    def _submit(self, tasks: list[Task]) -> None:
        remote = self.remote_fn.remote
        for task in tasks:
            task.worker = remote(task.payload)
        self.watcher.add(tasks)

    def _wave(self, refs: list[Any], idle: bool) -> list[Any]:
        """One wave (:mod:`._waves`): one ``ray.wait`` costs about what one
        ``ObjectRef.future()`` does, per ref looked at."""
        if idle:
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=WAVE_IDLE_S, fetch_local=False)
        else:
            ready, _ = self.ray.wait(
                refs, num_returns=len(refs), timeout=WAVE_GATHER_S, fetch_local=False
            )
        return list(ready)

    def _collect(self, tasks: list[Task]) -> list[Outcome]:
        refs = [task.worker for task in tasks]
        for task in tasks:
            task.worker = None
        try:
            return [("ok", value) for value in self.ray.get(refs)]
        except Exception:  # one of them failed: one by one
            return [self._outcome(ref) for ref in refs]

    def _outcome(self, ref: Any) -> Outcome:
        exceptions = self.ray.exceptions
        try:
            return ("ok", self.ray.get(ref))
        except exceptions.TaskCancelledError:
            return ("cancelled", None)
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError) as exc:
            return ("crashed", exc)
        except Exception as exc:
            return ("failed", exc)

    def _cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            if handle is None:
                continue
            try:
                self.ray.cancel(handle, force=True)
            except Exception:
                pass

    def _shutdown_engine(self) -> None:
        self.watcher.stop()
        if self.started:
            self.ray.shutdown()
