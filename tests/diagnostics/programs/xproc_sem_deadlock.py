# ruff: noqa
# A cycle across two processes through a shared Semaphore: the parent holds the pool's only
# permit and waits for the child's lock; the child, holding that lock, waits for a permit.
# Run in debug mode (a semaphore's holder strands are known there, as in one process).
import sys
import threading
import plait
from plait.testing import wait_parked

pool = plait.Semaphore(1)
gate = plait.Lock()


def child_side(pool, gate, both, parent_parked):
    with gate:
        both.wait()
        assert parent_parked.wait(20)
        try:
            with pool:  # line 19: the child waits for a permit here, closing the cycle
                print("child got both")
        except plait.DeadlockError as exc:
            print("child raised:", exc, flush=True)
            print("links:", len(exc.cycle), flush=True)


if __name__ == "__main__":
    both = plait.Barrier(2)
    parent_parked = plait.Event()
    child = plait.Process(target=child_side, args=(pool, gate, both, parent_parked), daemon=True)
    child.start()

    def tell_when_parked():
        wait_parked(on=gate, count=1, timeout=20)
        parent_parked.set()

    with pool:
        both.wait()
        threading.Thread(target=tell_when_parked, daemon=True).start()
        gate.acquire()  # line 39: the parent waits here, holding the permit
        gate.release()
        print("parent got both", flush=True)
    child.join(20)
    sys.exit(child.exitcode)
