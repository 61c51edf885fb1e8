"""Process strands: ``plait.Process`` (the multiprocessing drop-in) and process calls.

* ``_process.py`` -- :class:`Process`: the one mechanism every plait child goes through
  (start method, pickling at ``start()``, lifeline, result channel).
* ``_call.py`` -- :func:`start_process_call` / :class:`ProcessCall`, what ``TaskGroup`` uses
  for ``on="process"``: a quiet ``Process`` with a future.
* ``_watcher.py`` -- the one thread that reads every result and reaps every child.
* ``_popen.py`` -- multiprocessing's ``Popen`` made safe to ask from many threads.
* ``_result.py`` -- the result channel's framing, read without ever blocking.
"""

from __future__ import annotations

from plait._processes._call import ProcessCall, start_process_call
from plait._processes._process import Process

__all__ = ["Process", "ProcessCall", "start_process_call"]
