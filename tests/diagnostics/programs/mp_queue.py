# ruff: noqa
# The seed's process Queue (S11): a child puts, the parent gets.
import multiprocessing


def foo(q):
    q.put([42, None, "hello"])


if __name__ == "__main__":
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=foo, args=(q,))
    p.start()
    print(q.get())
    p.join()
    print(type(q).__module__.split(".")[0] in ("plait", "multiprocessing"))
