# ruff: noqa
# fmt: off
# Seed S2, t1.join().
# Unchanged but for the import and the sleeps (3 s / 5 s -> 0.1 s / 0.5 s).
import plait as threading
from time import ctime, sleep
import time


def music(name):
    print("Begin listening to {name}. {time}".format(name=name, time=ctime()))
    sleep(0.1)
    print("end listening {time}".format(time=ctime()))


def blog(title):
    print("Begin recording the {title}. {time}".format(title=title, time=ctime()))
    sleep(0.5)
    print('end recording {time}'.format(time=ctime()))


threads = []
t1 = threading.Thread(target=music, args=('过火',))
t2 = threading.Thread(target=blog, args=('博客园',))
threads.append(t1)
threads.append(t2)

if __name__ == '__main__':
    for t in threads:
        t.start()

    t1.join()

    print("all over %s" % ctime())
