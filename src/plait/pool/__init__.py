"""A process pool that never hangs, is fast on tiny tasks, and runs coroutines in workers.

How work flows through the pool::

    caller (any thread or coroutine)
      |  apply_async / submit / map: pickled HERE (plait._ipc.serialize.dumps), so a bad
      |  argument fails at the call; map queues each chunk as soon as it is pickled;
      |  imap registers a Source (its input is read later, a bounded window ahead)
      v
    +-------------+  a worker with room (< depth tasks in flight) gets the oldest task
    | Engine      |  at once, from whichever thread noticed the room:
    |  pending    |    small payload -> straight down the worker's pipe
    |  (deque)    |    large payload -> that worker's own sender thread, so no other
    |  sources    |                     worker (and no result) waits behind it
    +-------------+
       ^     |      feeder thread: reads imap inputs, starts replacement workers
       |     |
       |     |  one duplex pipe per worker                          +-----------+
       |     +----------------------------------------------------->| worker 0  |--+
       |     |                                                      +-----------+  |
       |     +------------------ ... ---------------------------->  | worker N  |--+
       |                                                            +-----------+  |
       |   marker rows in shared memory: [task, item, stage, start, span]          |
       |   (written by each worker, read by the parent after a death or timeout)   |
       |                                                                           |
    result thread: epoll on every pipe and process sentinel <----------------------+
      |  reply    -> sink (Future / list / imap iterator), callbacks run here;
      |              the worker now has room: give it the next task
      |  sentinel -> the task (and item) named by the dead worker's marker fails with
      |              WorkerCrashed (TimeoutError when we killed it for task_timeout);
      |              tasks it had not started go back to the front of the queue;
      |              the feeder starts a replacement
      v
    AsyncResult.get() / Future.result() / next(it) / await / async for
      every wait parks through plait's kernel (plait.pool._waiting): a cancel scope, a
      deadline or a cancelled TaskGroup ends it, and a *cancelled* wait cancels its task
      (dropped if queued; a coroutine cancelled in its worker; a plain function's worker
      killed and replaced, its other tasks run again)

The parent never unpickles what it sent: after a death, the rest of a chunk is re-sent as
a *subset* of the same pickled body (``_protocol.subset_payload``), so an argument whose
unpickling crashes or exits can only hurt a worker.

Why one pipe per worker rather than one shared queue (as ``concurrent.futures`` and
``multiprocessing.pool`` have): the parent always knows which tasks sit with which worker,
so a crash costs exactly one task, never the pool; nothing is lost in a queue's feeder
thread; a worker holds at most ``depth`` tasks (1 for long tasks so that they balance,
2 for short ones so that a worker never waits for its next task).
"""

from __future__ import annotations

from plait._tasks._process_strands import provide_warm_workers
from plait.pool._engine import PoolClosedError
from plait.pool._pool import Pool, PoolStatistics
from plait.pool._results import AsyncResult, IMapIterator, PoolTimeoutError
from plait.pool._warm import run_warm

provide_warm_workers(run_warm)  # process strands run on the pool's warm workers

__all__ = [
    "AsyncResult",
    "IMapIterator",
    "Pool",
    "PoolClosedError",
    "PoolStatistics",
    "PoolTimeoutError",
]
