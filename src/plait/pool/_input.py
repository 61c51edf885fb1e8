"""Reading ``imap`` inputs: a bounded window ahead of the caller, chunk by chunk.

Runs in the pool's input thread, the only thread that calls user generators, so one that
blocks delays only its own input. An item that will not pickle fails alone, at its index;
an exception raised by the input ends it, after the items read before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plait.pool._chunking import Source
from plait.pool._protocol import HEADER, KIND_CALL
from plait.pool._tasks import Sink, Task, all_failed

if TYPE_CHECKING:
    from plait.pool._engine_base import EngineBase

__all__ = ["SourceEntry", "input_loop"]

log = logging.getLogger("plait.pool")


class SourceEntry:
    """An ``imap`` input being read: where its items go and how a chunk is serialised."""

    __slots__ = ("build", "label", "on_length", "retries", "sink", "source", "timeout")

    def __init__(
        self,
        source: Source,
        sink: Sink,
        build: Callable[[list[Any]], bytes],
        on_length: Callable[[int], None],
        *,
        label: str,
        retries: int,
        timeout: float | None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.build = build
        self.on_length = on_length
        self.label = label
        self.retries = retries
        self.timeout = timeout


def input_loop(engine: EngineBase) -> None:
    """Reads ``imap`` inputs (user generators may block: only this thread waits)."""
    while True:
        with engine.lock:
            if engine.threads_stop:
                return
            if not engine.input_requested:
                engine.input_cond.wait(0.5)
            engine.input_requested = False
        if engine.stopping():
            return
        try:
            for entry in list(engine.sources):
                refill(engine, entry)
        except Exception:
            log.exception("plait.Pool: internal error in the input thread")


def refill(engine: EngineBase, entry: SourceEntry) -> None:
    source = entry.source
    if source.dropped:
        source.exhausted = True
    while not source.exhausted:
        if not source.room():
            # Say "stalled" first, then look again: a consumer that makes room after
            # this sees the flag and asks for another pass; one before it, we see.
            source.stalled = True
            if not source.room():
                break
            source.stalled = False
        size = source.next_size(engine.item_seconds)
        first, chunk, error = source.pull(size)
        if error is not None and chunk and source.fixed_chunksize is not None:
            # An explicit chunksize: as multiprocessing, the input's error takes the
            # place of the whole chunk it broke (its items before the error do not run).
            source.pulled = first
            chunk = []
        if chunk:
            tasks = chunk_tasks(engine, entry, first, chunk)
            with engine.lock:
                for task in tasks:
                    engine.pending.append(task)
                    engine.outstanding += 1
                assignments = engine.assign_locked()
            engine.send(assignments)
        if error is not None:
            index = source.pulled
            with engine.lock:
                engine.outstanding += 1
            dummy = Task(0, b"", [index], entry.sink, label="input", retries=0, timeout=None)
            engine.deliver(dummy, [index], *all_failed(1, error))
            entry.on_length(index + 1)
            break
        if len(chunk) < size:  # the input ended (pull marked it exhausted)
            entry.on_length(source.pulled)
            break
    if source.exhausted:
        with engine.lock:
            if entry in engine.sources:
                engine.sources.remove(entry)
            engine.maybe_idle_locked()


def chunk_tasks(engine: EngineBase, entry: SourceEntry, first: int, chunk: list[Any]) -> list[Task]:
    """Tasks for one chunk; an item that will not pickle fails alone, at its index."""
    try:
        return [task_for(engine, entry, first, chunk)]
    except Exception:
        pass
    tasks: list[Task] = []
    for offset, item in enumerate(chunk):
        try:
            tasks.append(task_for(engine, entry, first + offset, [item]))
        except Exception as exc:
            with engine.lock:
                engine.outstanding += 1
            index = first + offset
            dummy = Task(0, b"", [index], entry.sink, label="input", retries=0, timeout=None)
            engine.deliver(dummy, [index], *all_failed(1, exc))
    return tasks


def task_for(engine: EngineBase, entry: SourceEntry, first: int, items: list[Any]) -> Task:
    task_id = engine.new_id()
    payload = HEADER.pack(task_id, KIND_CALL) + entry.build(items)
    return Task(
        task_id,
        payload,
        range(first, first + len(items)),
        entry.sink,
        label=entry.label,
        retries=entry.retries,
        timeout=entry.timeout,
    )
