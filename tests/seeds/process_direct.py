# ruff: noqa
# fmt: off
# Seed S10, direct call. Unchanged but for the import and the sleep (1 s -> 0.2 s).
from plait import Process
import time


def f(name):
    print('hello', name, time.ctime())
    time.sleep(0.2)


if __name__ == '__main__':
    p_list = []
    for i in range(3):
        p = Process(target=f, args=('alvin:%s' % i,))
        p_list.append(p)
        p.start()
    for p in p_list:
        p.join()

    print('end')
