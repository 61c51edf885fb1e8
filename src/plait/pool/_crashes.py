"""What happens when a worker dies: which task it was running, what fails, what runs again.

The dead worker's marker row (see :mod:`plait.pool._protocol`) names the task, the item
and the stage it was in. That item fails with :class:`plait.WorkerCrashed` (or
``TimeoutError`` when the pool killed it for ``task_timeout``; or it runs again if the
caller allowed ``retries``); items of the same chunk run again; tasks the worker had not
started go back to the front of the queue. Tiny items are marked in strides, so a crash
inside a stride runs that stride again item by item: only an item that crashes when run
alone fails.
"""

from __future__ import annotations

import logging
import signal
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING

from plait._errors import WorkerCrashed, describe_exit
from plait.pool._protocol import (
    CLOSE,
    MARKER_WIDTH,
    STAGE_IDLE,
    STAGE_LOAD,
    STAGE_RUN,
    STAGE_SEND,
    STAGES,
    call_body,
    subset_payload,
)
from plait.pool._tasks import Task, all_failed
from plait.pool._workers import WorkerHandle, join_quietly

if TYPE_CHECKING:
    from plait.pool._engine import Engine

__all__ = ["handle_death"]

log = logging.getLogger("plait.pool")

MAX_REQUEUES = 3  # a task put back this often without ever starting fails instead
_KILLED = (-signal.SIGKILL, -signal.SIGTERM)  # killed from outside: no fault of its tasks


def handle_death(engine: Engine, worker: WorkerHandle) -> None:
    """Account for every task ``worker`` held when it died, and ask for a replacement."""
    # Replies the worker sent before it died are still in the pipe: take them first.
    try:
        while worker.conn.poll(0):
            engine.on_reply(worker, worker.conn.recv_bytes())
    except (EOFError, OSError):
        pass
    exitcode = join_quietly(worker, 1.0)
    base = worker.row * MARKER_WIDTH
    tid, item, stage = (engine.marker[base], engine.marker[base + 1], engine.marker[base + 2])
    span = max(1, engine.marker[base + 4])
    with engine.lock:
        if engine.workers.get(worker.row) is not worker:
            return
        del engine.workers[worker.row]
        engine.free_rows.append(worker.row)
        tasks = list(worker.inflight.values())
        worker.inflight.clear()
        for task in tasks:
            if task.timeout is not None:
                engine.timed_inflight -= 1
        expected = worker.stopped and not tasks and worker.kill_reason is None
        if not expected:
            engine.stats["replaced"] += 1
            # Died by itself (not by a signal) before its first reply: a failing
            # initializer or a broken environment; starting more at once won't help.
            if worker.replies == 0 and (
                worker.init_error is not None or (exitcode is not None and exitcode > 0)
            ):
                engine.start_failures += 1
        if (
            engine.state == CLOSE
            and not engine.workers
            and engine.outstanding == 0
            and not engine.sources
        ):
            engine.threads_stop = True  # closed and done: the threads end by themselves
        engine.request_feed_locked()  # replace it
    worker.mark_dead()
    try:
        worker.conn.close()
    except OSError:
        pass
    if expected and exitcode == 0:
        return
    requeue: list[Task] = []
    cancel_kill = worker.kill_reason is not None and worker.kill_reason[0] == "cancel"
    for task in tasks:
        if task.cancelled:  # its caller stopped waiting: it is not run again
            error = CancelledError(f"{task.label}: its caller's wait was cancelled")
            engine.deliver(task, task.indices, *all_failed(len(task.indices), error))
        elif cancel_kill:  # killed by us for another task: this one runs again
            requeue.append(task)
        elif worker.init_error is not None:
            engine.stats["crashed"] += 1
            engine.deliver(task, task.indices, *all_failed(len(task.indices), worker.init_error))
        elif engine.concurrency > 1 or (task.id == tid and stage in STAGES and stage != 0):
            requeue.extend(crashed(engine, task, worker, exitcode, item, stage, span))
        else:
            # Not started: it goes back to the queue. Only a worker that died by itself
            # counts against it; an outside kill (a kill storm) never fails unstarted work.
            if exitcode not in _KILLED:
                task.requeues += 1
            if task.requeues > MAX_REQUEUES:
                requeue.extend(crashed(engine, task, worker, exitcode, 0, 0, 1))
            else:
                requeue.append(task)
    if requeue:
        with engine.lock:
            for task in reversed(requeue):
                engine.pending.appendleft(task)
            engine.request_feed_locked()


def crashed(
    engine: Engine,
    task: Task,
    worker: WorkerHandle,
    exitcode: int | None,
    item: int,
    stage: int,
    span: int,
) -> list[Task]:
    """Fail the item that was running when ``worker`` died; return what to run again."""
    n = len(task.indices)
    if (
        stage in (STAGE_LOAD, STAGE_SEND)
        and exitcode in _KILLED
        and worker.kill_reason is None
        and engine.concurrency == 1
        and task.requeues < MAX_REQUEUES
    ):
        # Killed from outside while it unpickled the task or sent the result: no item
        # is to blame, so the whole task runs again (a few times at most: an OOM kill
        # of a huge payload must end).
        task.requeues += 1
        return [task]
    window = list(range(item, min(item + span, n)))
    if stage == STAGE_RUN and len(window) > 1 and worker.kill_reason is None:
        return bisect(engine, task, worker, exitcode, window)
    if worker.kill_reason == ("timeout", task.id):
        engine.stats["timed_out"] += 1
        error: BaseException = TimeoutError(
            f"{task.label} ran longer than task_timeout={task.timeout} s; its worker "
            f"(pid {worker.pid}) was killed and replaced"
        )
    elif task.retries > 0 and n > 1 and stage == STAGE_RUN and engine.concurrency == 1:
        # Retries count per item: the item that was running runs again alone with one
        # retry fewer; the rest of the chunk keeps its own.
        engine.stats["retried"] += 1
        alone = split(engine, task, [item])
        rest = split(engine, task, [k for k in range(n) if k != item])
        if alone is not None and rest is not None:
            alone.retries = task.retries - 1
            with engine.lock:
                engine.outstanding += 1  # two tasks replace one
            return [alone, rest]
        task.retries -= 1
        return [task]
    elif task.retries > 0:
        task.retries -= 1
        engine.stats["retried"] += 1
        log.warning(
            "plait.Pool: worker %s %s while running %s; retrying it",
            worker.pid,
            describe_exit(exitcode),
            task.label,
        )
        return [task]
    else:
        engine.stats["crashed"] += 1
        where = STAGES.get(stage, "")
        what = task.label if n == 1 else f"{task.label} (item {item + 1} of {n})"
        if stage in (STAGE_LOAD, STAGE_SEND):
            what += f" {where}"
        elif stage == STAGE_IDLE:
            what = f"{task.label} (not started: {MAX_REQUEUES + 1} workers died holding it)"
        if engine.concurrency > 1:
            what += " (the worker ran its tasks' coroutines at once; all of them failed)"
        error = WorkerCrashed(pid=worker.pid, exitcode=exitcode, task=what)
    if n == 1 or stage != STAGE_RUN or engine.concurrency > 1:
        engine.deliver(task, task.indices, *all_failed(n, error))
        return []
    # A chunk: only the item that was running fails; the others run again.
    rest = split(engine, task, [k for k in range(n) if k != item])
    if rest is None:
        engine.deliver(task, task.indices, *all_failed(n, error))
        return []
    with engine.lock:
        engine.outstanding += 1  # the split-off task; deliver below retires the old one
    engine.deliver(task, [task.indices[item]], *all_failed(1, error))
    return [rest]


def bisect(
    engine: Engine, task: Task, worker: WorkerHandle, exitcode: int | None, window: list[int]
) -> list[Task]:
    """The worker died somewhere in ``window`` (tiny items are marked in strides): run
    those items again one by one, and the rest as one task. Only an item that crashes
    when run alone fails."""
    n = len(task.indices)
    inside = set(window)
    new: list[Task] = []
    rest = [k for k in range(n) if k not in inside]
    parts = ([rest] if rest else []) + [[k] for k in window]
    for part in parts:
        piece = split(engine, task, part)
        if piece is None:  # cannot re-pickle: fail the chunk as a whole
            return crashed(engine, task, worker, exitcode, window[0], STAGE_RUN, 1)
        new.append(piece)
    with engine.lock:
        engine.outstanding += len(new) - 1  # the old task is replaced by its pieces
    for piece in new[-len(window) :]:
        piece.label = f"{task.label} (input item #{piece.indices[0]})"
    return new


def split(engine: Engine, task: Task, keep: list[int]) -> Task | None:
    """A task that runs only the items ``keep`` of ``task``: the same pickled body, sent
    again with the positions to run (see ``_protocol.subset_payload``). The parent never
    unpickles a payload."""
    try:
        positions, body = call_body(task.payload)
        chosen = keep if positions is None else [positions[k] for k in keep]
        new_id = engine.new_id()
        payload = subset_payload(new_id, chosen, body)
    except Exception:
        return None
    return Task(
        new_id,
        payload,
        [task.indices[k] for k in keep],
        task.sink,
        label=task.label,
        retries=task.retries,
        timeout=task.timeout,
    )
