# ruff: noqa
# The seed's deadlock across two processes: each takes one shared lock, then wants the
# other's.
import sys
import plait

mutexA = plait.Lock()
mutexB = plait.Lock()


def fun2(mutexA, mutexB, both):
    with mutexB:
        both.wait()
        with mutexA:  # line 14: the child waits here
            print("child got both")


if __name__ == "__main__":
    both = plait.Barrier(2)
    child = plait.Process(target=fun2, args=(mutexA, mutexB, both), daemon=True)
    child.start()
    with mutexA:
        both.wait()
        with plait.move_on_after(float(sys.argv[1])):
            mutexB.acquire()  # line 25: the parent waits here
        print("parent gave up", flush=True)
    child.join(10)
