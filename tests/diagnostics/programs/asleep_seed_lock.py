# ruff: noqa
# The seed's deadlock with plait's Lock, taken on the fast path (no owner recorded outside
# debug mode), and a main thread that joins: every thread ends up asleep.
import plait as threading

mutexA = threading.Lock()
mutexB = threading.Lock()
both = threading.Barrier(2)


def one():
    with mutexA:
        both.wait()
        with mutexB:
            pass


def two():
    with mutexB:
        both.wait()
        with mutexA:
            pass


threads = [threading.Thread(target=one, name="one"), threading.Thread(target=two, name="two")]
for t in threads:
    t.daemon = True  # the deadlocked threads must not keep the interpreter from exiting
    t.start()
from plait.testing import wait_parked

wait_parked(on=mutexA, count=1)
wait_parked(on=mutexB, count=1)  # both threads wait: main's join is the last wait
for t in threads:
    t.join()
