"""Hunt for lost wake-ups on a shared Lock (issue 18): run the short stress on a
shared Lock for new seeds until the time is up, and print each failure.

    python tests/sync/stress_shared_lock_loop.py 150

Before the fix of the room's announcements (doorbell.Room.announced) about 1 run in 40
failed on a loaded 2-core machine (0 in 1,912 runs after): a coroutine worker never woken
(TimeoutError), or a cancelled waiter left in the lock's room queue.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

import test_sync_stress as stress  # noqa: E402


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 150.0
    end = time.monotonic() + seconds
    bad = runs = 0
    seed = 100
    while time.monotonic() < end:
        seed += 1
        runs += 1
        try:
            stress._run_stress("shared-lock", 0.3, seed)
        except BaseException as exc:
            bad += 1
            print("seed", seed, type(exc).__name__, str(exc)[:400], flush=True)
    print("runs", runs, "failed", bad)


if __name__ == "__main__":
    main()
