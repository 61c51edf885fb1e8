"""A process pool that never hangs, is fast on tiny tasks, and runs coroutines in workers.

How work flows through the pool::

    caller (any thread or coroutine)
      |  apply_async / submit / map: pickled HERE (plait._ipc.serialize.dumps), so a bad
      |  argument fails at the call; map chunks its input; imap registers a Source
      v
    +-------------+   small payload, a worker has room: sent at once by the caller
    | Engine      |------------------------------------------------------+
    |  pending    |                                                      |
    |  (deque)    |<-- feeder thread: reads imap input a bounded window  |
    |  sources    |    ahead, starts replacement workers, sends large    |
    +-------------+    payloads                                          |
          |                                                              v
          |  one duplex pipe per worker, at most `depth` tasks     +-----------+
          +------------------------------------------------------->| worker 0  |--+
          |                                                        +-----------+  |
          |              ...                                       | worker N  |--+
          |                                                        +-----------+  |
          |   marker rows in shared memory: [task, item, stage, start]            |
          |   (written by each worker, read by the parent after a death/timeout)  |
          v                                                                       |
    result thread: wait(pipes + process sentinels) <------------------------------+
      |  reply -> sink (Future / list / imap iterator), callbacks run here;
      |           then the next small task goes to the worker that just finished
      |  sentinel -> the task named by the dead worker's marker fails with
      |              WorkerCrashed (or TimeoutError when we killed it), its other
      |              tasks go back to the front of the queue, the worker is replaced
      v
    AsyncResult.get() / Future.result() / next(it) / await / async for

Why one pipe per worker rather than one shared queue (as ``concurrent.futures`` and
``multiprocessing.pool`` have): the parent always knows which tasks sit with which worker,
so a crash costs exactly one task, never the pool; nothing is lost in a queue's feeder
thread; a worker holds at most ``depth`` tasks (1 for long tasks so that they balance,
2 for short ones so that a worker never waits for its next task).
"""

from __future__ import annotations

from plait.pool._engine import PoolClosedError
from plait.pool._pool import Pool, PoolStatistics
from plait.pool._results import AsyncResult, IMapIterator, PoolTimeoutError

__all__ = [
    "AsyncResult",
    "IMapIterator",
    "Pool",
    "PoolClosedError",
    "PoolStatistics",
    "PoolTimeoutError",
]
