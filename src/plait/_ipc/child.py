"""Entry points that run inside child processes (preloaded by the fork server)."""

from __future__ import annotations

import plait._ipc.lifeline
import plait._ipc.serialize
import plait._processes  # noqa: F401 - the class every plait child is rebuilt as
