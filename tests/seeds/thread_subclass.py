# ruff: noqa
# fmt: off
# Seed S1, subclassed. Unchanged but for the import and the sleeps (1 s / 2 s -> 0.1 / 0.2).
import plait as threading
import time


class MyThread(threading.Thread):
    def __init__(self, num):
        threading.Thread.__init__(self)
        self.num = num

    def run(self):
        print("running on number:%s" % self.num, "time-->", time.time())
        time.sleep(self.num)
        print("stop on number:%s" % self.num, "time-->", time.time())


if __name__ == '__main__':
    t1 = MyThread(0.1)
    t2 = MyThread(0.2)
    t1.start()
    t2.start()
    print("now time-->", time.time())
    print('线程1--》》', t1.getName())
    print('线程2--》》', t2.getName())
