"""A plait program with a process strand, a plait.Process and a pool worker, each parked
in its child
(``tests/diagnostics/test_dump_tree.py`` dumps the tree). Each child writes
``<ready dir>/<its role>`` once its waiter is parked; a line on stdin ends the program."""

import os
import sys
import threading

import plait
from plait.diagnostics import serve_dumps
from plait.testing import wait_parked


def park_here(ready_dir: str, role: str) -> str:
    gate = plait.RLock()
    gate.acquire()

    def stuck_in_child() -> None:
        with gate:
            pass

    waiter = plait.Thread(target=stuck_in_child, name=f"{role}-waiter", daemon=True)
    waiter.start()
    wait_parked(on=gate, count=1, timeout=20)
    with open(os.path.join(ready_dir, role + ".tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(ready_dir, role + ".tmp"), os.path.join(ready_dir, role))
    plait.Event().wait(60)  # until the parent ends it
    return role


def main() -> None:
    ready_dir = sys.argv[1]
    serve_dumps()
    stop = plait.Event()

    def read_stdin() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    child = plait.Process(target=park_here, args=(ready_dir, "process"), name="plain-child")
    child.start()
    pool = plait.Pool(1)
    try:
        pool.submit(park_here, ready_dir, "pool")
        with plait.TaskGroup() as tg:
            strand = tg.spawn(park_here, ready_dir, "strand", on="process", name="strand-child")
            print("started", flush=True)
            stop.wait(60)
            strand.cancel()
            child.terminate()
            child.join(10)
    finally:
        pool.terminate()
        pool.join()


if __name__ == "__main__":
    main()
