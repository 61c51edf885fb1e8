# ruff: noqa
# Two processes close one cycle at the same moment (as xproc_deadlock_same_moment.py), and
# the side that lets the other go first (its check defers) has its cancel scope cancelled
# while it defers: it must end with Cancelled at once -- its deferral is a kernel park --
# while the other side still holds its verdict back (it acts on it only after that: it
# raises, or takes both locks if the cancelled side let go of its lock first).
import os
import sys
import time
import plait
from plait._sync import _robust
from plait.diagnostics import _xquery
from xproc_deadlock_same_moment import main, say



def mark(where, name, what, text=""):
    path = os.path.join(where, f"{name}-{what}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def read_key(where, name, what):
    with open(os.path.join(where, f"{name}-{what}")) as f:
        return tuple(int(part) for part in f.read().split())


def meet(where, name, stage, patience):
    give_up = time.monotonic() + patience
    while not os.path.exists(os.path.join(where, f"{name}-{stage}")):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.001)
    return True


def hook_for(name, other_name, where, closing, scopes):
    met = set()

    def hook(waiter, stage):
        if waiter.on is not closing or stage in met:
            return
        met.add(stage)
        key = (_robust.my_tag(), id(waiter))  # the check's own order: the smaller goes first
        mark(where, name, stage, "%d %d" % key)
        if stage == "defer":
            scopes[0].cancel()  # from this strand: what a watchdog or a sibling would do
        elif stage in ("walk", "verdict"):
            if not meet(where, other_name, stage, 20):
                say(name, "never met the other side at", stage)
            # The side that goes first holds its verdict (still queued: the cycle stays
            # closed) until the other, deferring, has ended by its cancellation.
            if stage == "verdict" and key < read_key(where, other_name, stage):
                if not meet(where, other_name, "cancelled", 10):
                    say(name, "saw the other side still deferring")

    return hook


def side(name, other_name, mine, theirs, both, where):
    scopes = []
    _xquery.check_hook = hook_for(name, other_name, where, theirs, scopes)
    with mine:
        both.wait()
        try:
            with plait.CancelScope() as scope:
                scopes.append(scope)
                with theirs:
                    say(name, "got both")
            if scope.cancelled_caught:
                mark(where, name, "cancelled")
                say(name, "cancelled")
        except plait.DeadlockError as exc:
            say(name, "raised, links:", len(exc.cycle))


if __name__ == "__main__":
    main(side)
