"""Task groups: scopes that own strands of every kind.

``TaskGroup.spawn(fn, *args)`` starts ``fn`` as a coroutine strand (coroutine function),
a thread strand (plain function) or a process strand (``on="process"``); the group does not
exit until they are all done. The first failure cancels the siblings and the body; all
failures come out as one ``ExceptionGroup``. An outer cancellation is never swallowed: the
group takes back only the cancellation it caused itself (the lesson of CPython gh-116720).

How cancellation reaches each kind:

* coroutine -- ``task.cancel()`` on its loop, seen at its next ``await``;
* thread    -- its root :class:`CancelScope` is cancelled: a plait wait wakes at once, plain
  code sees it at its next plait call or ``plait.checkpoint()``; a thread that ignores it
  for ``grace`` seconds is abandoned and reported by name (:class:`CancellationIgnored`);
* process   -- SIGTERM, then SIGKILL after ``grace`` seconds.

A :class:`Task` *is* the strand it runs (a :class:`~plait._core.Strand` subclass), so
diagnostics see the same object the user holds. A coroutine strand spawned on its group's
own loop goes further: it is the asyncio task itself (:class:`_CoroStrand`, registered as a
``Task`` and a ``Strand``), so spawning one costs what ``asyncio.TaskGroup`` pays.
"""

from plait._tasks._group import TaskGroup
from plait._tasks._task import On, Task, gil_enabled

__all__ = ["On", "Task", "TaskGroup", "gil_enabled"]
