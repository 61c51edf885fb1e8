# ruff: noqa
# The seed's deadlock across two processes: each takes one shared lock, then wants the
# other's.
import os
import sys
import plait

mutexA = plait.Lock()
mutexB = plait.Lock()


def fun2(mutexA, mutexB, both, parent):
    with mutexB:
        both.wait()
        _until_waiting(parent, mutexB)
        with mutexA:  # line 16: the child waits here, closing the cycle
            print("child got both")


def _until_waiting(parent, lock):
    """The parent's wait is timed (it is never checked itself): let it be announced in the
    lock's wait table first, so that the child's wait is the one that closes the cycle."""
    import os, time
    from plait.diagnostics._xwaitfor import _waiting_pids

    deadline = time.monotonic() + 10
    while parent not in _waiting_pids(lock._shared) and time.monotonic() < deadline:
        time.sleep(0.005)


if __name__ == "__main__":
    both = plait.Barrier(2)
    child = plait.Process(target=fun2, args=(mutexA, mutexB, both, os.getpid()), daemon=True)
    child.start()
    with mutexA:
        both.wait()
        with plait.move_on_after(float(sys.argv[1])):
            mutexB.acquire()  # the parent waits here
        print("parent gave up", flush=True)
    child.join(10)
