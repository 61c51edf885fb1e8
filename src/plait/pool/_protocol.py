"""The wire format between the pool and its workers, and the worker's progress marker.

Kept tiny and import-light: both the parent and every worker import it.

Parent → worker (one ``send_bytes`` per message)::

    HEADER (task id: u64, kind: u8)  +  pickle((fn, items, star))    kind == KIND_CALL
    HEADER (0, KIND_STOP)                                            the worker exits cleanly
    HEADER (task id, KIND_CANCEL)            cancel that task's coroutines (concurrency > 1)
    HEADER (task id, KIND_SUBSET) + u32 n + n x u32 positions + pickle((fn, items, star))
                                 run only ``items[p]`` for ``p`` in positions, in that order

A subset is how the parent runs part of a chunk again after a worker died: it never
unpickles what it sent (an argument's ``__reduce__`` may crash or exit the process that
loads it), it re-sends the same pickled body with the positions to run.

``items`` is a list of argument tuples (one per task item; ``apply`` sends a list of one
``(args, kwargs)`` pair with ``star=STAR_KW``). ``star`` says how an item is applied::

    STAR_ONE  fn(item)           map, imap
    STAR_ARGS fn(*item)          starmap
    STAR_KW   fn(*item[0], **item[1])   apply, submit

Worker → parent (the same header, then a pickled body, so that the parent knows which
task a reply belongs to even when the body will not unpickle)::

    HEADER (task id, REPLY_DONE)        + pickle(([(status, value), ...], seconds))
    HEADER (task id, REPLY_FAILED)      + pickle((stage, PackedError))  the whole task failed
    HEADER (0, REPLY_INIT_FAILED)       + pickle(PackedError)  the initializer raised; exit

``status`` is 0 for a value, else the stage whose failure the ``PackedError`` describes
(``STAGE_RUN``: the function raised; ``STAGE_SEND``: its result would not pickle).

The progress marker is a row of five signed 64-bit integers in shared memory, one row per
worker slot, written by the worker and read by the parent only after the worker died or
when a task's deadline passes::

    [task id, item index, stage, start time (monotonic ns), span]

It tells the parent which task, which item and which stage a dead worker was in, without
a message per item. ``span`` is how many items from ``item index`` may be the one running:
1 (exact) for slow items; for items of a few microseconds the worker writes the marker
once per 64 items (a store per item would cost more than the item), and the parent runs
those 64 again one by one to find the one that crashes.
"""

from __future__ import annotations

import struct

__all__ = [
    "CLOSE",
    "HEADER",
    "KIND_CALL",
    "KIND_CANCEL",
    "KIND_STOP",
    "KIND_SUBSET",
    "MARKER_WIDTH",
    "REPLY_DONE",
    "REPLY_FAILED",
    "REPLY_INIT_FAILED",
    "RUN",
    "STAGES",
    "STAGE_IDLE",
    "STAGE_INIT",
    "STAGE_LOAD",
    "STAGE_RUN",
    "STAGE_SEND",
    "STAR_ARGS",
    "STAR_KW",
    "STAR_ONE",
    "STRIDE",
    "TERMINATE",
    "call_body",
    "subset_payload",
]

HEADER = struct.Struct("<QB")

KIND_CALL = 1
KIND_STOP = 2
KIND_CANCEL = 3
KIND_SUBSET = 4

_COUNT = struct.Struct("<I")

STAR_ONE = 0
STAR_ARGS = 1
STAR_KW = 2

REPLY_DONE = 1
REPLY_FAILED = 2
REPLY_INIT_FAILED = 3

STAGE_IDLE = 0
STAGE_LOAD = 1
STAGE_RUN = 2
STAGE_SEND = 3
STAGE_INIT = 4

STAGES = {
    STAGE_IDLE: "between tasks (in the pool's own code)",
    STAGE_LOAD: "while unpickling the task",
    STAGE_RUN: "while running the function",
    STAGE_SEND: "while pickling or sending the result",
    STAGE_INIT: "in the initializer",
}

# The pool's states (parent side only; here so that every module names them alike).
RUN, CLOSE, TERMINATE = "running", "closed", "terminated"

MARKER_WIDTH = 5
STRIDE = 64  # items per marker write in the hot loop


def call_body(buf: bytes | memoryview) -> tuple[list[int] | None, memoryview]:
    """A call message's positions to run (``None``: all) and its pickled body."""
    view = memoryview(buf)
    if HEADER.unpack_from(view)[1] != KIND_SUBSET:
        return None, view[HEADER.size :]
    (n,) = _COUNT.unpack_from(view, HEADER.size)
    start = HEADER.size + _COUNT.size
    positions = list(struct.unpack_from(f"<{n}I", view, start))
    return positions, view[start + 4 * n :]


def subset_payload(task_id: int, positions: list[int], body: bytes | memoryview) -> bytes:
    """A message that runs only ``positions`` of the items pickled in ``body``."""
    n = len(positions)
    return b"".join(
        (
            HEADER.pack(task_id, KIND_SUBSET),
            _COUNT.pack(n),
            struct.pack(f"<{n}I", *positions),
            body,
        )
    )
