"""Process strands: ``plait.Process`` (the multiprocessing drop-in) and process calls.

* ``_process.py`` -- :class:`Process`: one mechanism for every plait child (start method,
  pickling at ``start()``, lifeline, result channel).
* ``_call.py`` -- :func:`start_process_call` / :class:`ProcessCall`, what ``TaskGroup``
  uses for ``on="process"``.
* ``_watcher.py`` -- the one thread that reads every result and reaps every child.
"""

from __future__ import annotations

from plait._processes._call import ProcessCall, start_process_call
from plait._processes._process import Process

__all__ = ["Process", "ProcessCall", "start_process_call"]
