# ruff: noqa
# The seed's process Lock (S13): ten processes print under one lock; plus an Event and a
# Semaphore handed to children.
from multiprocessing import Process, Lock, Event, Semaphore


def f(l, i):
    with l:
        print("hello world %s" % i, flush=True)


def waiter(ev, sem, i):
    ev.wait()
    with sem:
        print("worker %s went" % i, flush=True)


if __name__ == "__main__":
    lock = Lock()
    ps = [Process(target=f, args=(lock, num)) for num in range(10)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    ev, sem = Event(), Semaphore(2)
    ps = [Process(target=waiter, args=(ev, sem, i)) for i in range(3)]
    for p in ps:
        p.start()
    ev.set()
    for p in ps:
        p.join()
    print("end")
