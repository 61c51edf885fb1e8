"""``Pool(backend="ray")``: the pool's tasks as Ray tasks.

Without ``address=`` the pool starts a local Ray instance of ``processes`` CPUs (unless
this process is already connected to one) and shuts it down with itself. Ray is told not
to re-run a task whose worker died (``max_retries=0``): plait's ``retries=`` decides, as
in the local pool.
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

__all__ = ["RayEngine"]


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
        super().__init__(n)
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
        for task in tasks:
            ref = self.remote_fn.remote(task.payload)
            future = ref.future()
            task.worker = (ref, future)
            future.add_done_callback(lambda _f, task=task: self.finished(task))

    def _collect(self, tasks: list[Task]) -> list[Outcome]:
        exceptions = self.ray.exceptions
        crashes = (exceptions.WorkerCrashedError, exceptions.NodeDiedError)
        outcomes: list[Outcome] = []
        for task in tasks:
            _ref, future = task.worker
            try:
                outcomes.append(("ok", future.result()))
            except exceptions.TaskCancelledError:
                outcomes.append(("cancelled", None))
            except crashes as exc:
                outcomes.append(("crashed", exc))
            except Exception as exc:
                outcomes.append(("failed", exc))
            task.worker = None
        return outcomes

    def _cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            if handle is None:
                continue
            try:
                self.ray.cancel(handle[0], force=True)
            except Exception:
                pass

    def _shutdown_engine(self) -> None:
        if self.started:
            self.ray.shutdown()
