# ruff: noqa
# The seed's deadlock across two processes, both waits untimed: the child's wait closes the
# cycle (the parent is parked first) and raises DeadlockError; the parent then goes on.
import os
import sys
import threading
import plait
from plait.testing import wait_parked

mutexA = plait.Lock()
mutexB = plait.Lock()


def fun2(mutexA, mutexB, both, parent_parked):
    with mutexB:
        both.wait()
        assert parent_parked.wait(20)
        try:
            with mutexA:  # line 19: the child waits here, closing the cycle
                print("child got both")
        except plait.DeadlockError as exc:
            print("child raised:", exc, flush=True)
            print("links:", len(exc.cycle), flush=True)


if __name__ == "__main__":
    both = plait.Barrier(2)
    parent_parked = plait.Event()
    child = plait.Process(target=fun2, args=(mutexA, mutexB, both, parent_parked), daemon=True)
    child.start()

    def tell_when_parked():
        wait_parked(on=mutexB, count=1, timeout=20)
        parent_parked.set()

    with mutexA:
        both.wait()
        threading.Thread(target=tell_when_parked, daemon=True).start()
        mutexB.acquire()  # line 39: the parent waits here, with no time limit
        mutexB.release()
        print("parent got both", flush=True)
    child.join(20)
    sys.exit(child.exitcode)
