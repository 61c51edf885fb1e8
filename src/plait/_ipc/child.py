"""Entry points that run inside child processes (preloaded by the fork server)."""

from __future__ import annotations

import plait._ipc.lifeline
import plait._ipc.serialize  # noqa: F401 - preloaded so a forked child starts warm
