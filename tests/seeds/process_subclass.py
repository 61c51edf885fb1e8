# ruff: noqa
# fmt: off
# Seed S10, subclassed. Unchanged but for the import and the sleep (1 s -> 0.2 s).
from plait import Process
import time


class MyProcess(Process):
    def __init__(self):
        super(MyProcess, self).__init__()

    def run(self):
        print('hello', self.name, time.ctime())
        time.sleep(0.2)


if __name__ == '__main__':
    p_list = []
    for i in range(3):
        p = MyProcess()
        p_list.append(p)
        p.start()

    for p in p_list:
        p.join()

    print('end')
