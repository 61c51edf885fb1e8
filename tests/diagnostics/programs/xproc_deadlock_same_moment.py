# ruff: noqa
# Two processes close one cycle at the same moment: each holds one lock and waits, untimed,
# for the other's, and a test hook makes both checks walk while the other's is still
# running (each sees the other), and both reach their verdict before either acts on it.
# Exactly one of them must raise DeadlockError; the other then takes both locks.
import os
import sys
import time
import plait
from plait.diagnostics import _xquery

first = plait.Lock()
second = plait.Lock()


def say(*parts):
    """Print one line in one write: both processes write to one pipe, and print() writes
    each part on its own when the output is unbuffered (PYTHONUNBUFFERED in CI)."""
    os.write(1, (" ".join(str(p) for p in parts) + "\n").encode())


def meet_in_the_check(name, other_name, where, closing):
    """The check hook: on the wait on ``closing``, at each stage of the check, say "here"
    and wait for the other side to get there too (once per stage; at "raise" only a
    moment: a check that works right gets there alone)."""
    met = set()

    def hook(waiter, stage):
        if waiter.on is not closing or stage in met or stage == "defer":
            return
        met.add(stage)
        open(os.path.join(where, f"{name}-{stage}"), "w").close()
        give_up = time.monotonic() + (0.2 if stage == "raise" else 20)
        while not os.path.exists(os.path.join(where, f"{other_name}-{stage}")):
            if time.monotonic() > give_up:
                if stage == "raise":
                    return
                say(name, "never met the other side at", stage)
                return
            time.sleep(0.001)

    return hook


def side(name, other_name, mine, theirs, both, where):
    _xquery.check_hook = meet_in_the_check(name, other_name, where, theirs)
    with mine:
        both.wait()
        try:
            with theirs:
                say(name, "got both")
        except plait.DeadlockError as exc:
            say(name, "raised, links:", len(exc.cycle))


def main(side):
    """Run ``side`` in this process and in a child, each holding one lock and then
    waiting for the other's (the directory to meet in is the first argument)."""
    where = sys.argv[1]
    both = plait.Barrier(2)
    child = plait.Process(
        target=side, args=("child", "parent", second, first, both, where), daemon=True
    )
    child.start()
    side("parent", "child", first, second, both, where)
    child.join(30)
    sys.exit(child.exitcode)


if __name__ == "__main__":
    main(side)
