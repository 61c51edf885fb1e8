# ruff: noqa
# fmt: off
# Seed S1, direct call. Unchanged but for the import and the sleeps (1 s / 2 s -> 0.1 / 0.2).
import plait as threading
import time


def sayhi(num):
    print("running on number:%s" % num, "time-->", time.time())
    time.sleep(num)
    print("stop on number:%s" % num, "time-->", time.time())


if __name__ == '__main__':
    t1 = threading.Thread(target=sayhi, args=(0.1,))
    t2 = threading.Thread(target=sayhi, args=(0.2,))
    t1.start()
    t2.start()
    print("now time-->", time.time())
    print('线程1--》》', t1.getName())
    print('线程2--》》', t2.getName())
