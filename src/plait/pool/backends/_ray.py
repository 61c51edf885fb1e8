"""``Pool(backend="ray")``: the pool's tasks as Ray tasks.

Without ``address=`` the pool starts a local Ray instance of ``processes`` CPUs (unless
this process is already connected to one) and shuts it down with itself. Ray is told not
to re-run a task whose worker died (``max_retries=0``): plait's ``retries=`` decides, as
in the local pool.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

from plait.pool._tasks import Task
from plait.pool.backends._remote import Outcome, RemoteEngine
from plait.pool.backends._run import run_payload

__all__ = ["RayEngine"]


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
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = processes or _local_processes()
            else:
                kwargs["address"] = address
            self._init_within(kwargs, address, connect_timeout)
            self.started = True
        n = processes or int(ray.cluster_resources().get("CPU", 1)) or 1
        self.remote_fn = ray.remote(num_cpus=1, max_retries=0)(run_payload)
        super().__init__(n)
        self.start_threads()

    def _init_within(self, kwargs: dict[str, Any], address: str | None, seconds: float) -> None:
        """``ray.init`` with a bound on how long an unreachable address may take."""
        outcome: list[BaseException | None] = []

        def connect() -> None:
            try:
                self.ray.init(**kwargs)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=connect, name="plait-ray-connect", daemon=True)
        thread.start()
        thread.join(seconds if address is not None else max(seconds, 60.0))
        if not outcome:
            raise ConnectionError(
                f"could not reach the Ray cluster at {address!r} within {seconds:g} s: check "
                "the address and that the cluster runs, or pass a longer connect_timeout="
            )
        error = outcome[0]
        if error is not None:
            if address is None:
                raise error
            raise ConnectionError(
                f"could not reach the Ray cluster at {address!r}: {error}"
            ) from error

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
