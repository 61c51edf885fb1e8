# ruff: noqa
# fmt: off
# Seed S12 (Manager dict and list shared by 10 processes). Unchanged but for the import.
from plait import Process, Manager

def f(d, l, n):
    d[n] = n
    d["name"] = "alvin"
    l.append(n)
    print("进程:", n, "列表L:", l)

if __name__ == '__main__':
    with Manager() as manager:
        d = manager.dict()
        l = manager.list(range(5))
        p_list = []
        for i in range(10):
            p = Process(target=f, args=(d, l, i))
            p.start()
            p_list.append(p)
        for res in p_list:
            res.join()
        print(d)
        print(l)
