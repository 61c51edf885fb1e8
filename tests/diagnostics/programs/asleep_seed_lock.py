# ruff: noqa
# The seed's deadlock with plait's Lock, taken on the fast path (which records only the
# taking thread): the wait that closes the cycle raises, in default mode.
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
for t in threads:
    t.join(10)
    assert not t.is_alive(), f"{t.name} is still blocked"
