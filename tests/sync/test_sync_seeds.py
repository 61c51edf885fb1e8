"""The seed's programs run unchanged with ``import plait as threading`` (sleeps shortened).

Until ``plait`` exports ``Thread``, the module the programs see is plait's primitives plus
threading's ``Thread``; once it does, they get ``plait`` itself.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
import threading
import types
from typing import Any

import pytest

import plait
import plait._sync as psync


def _plait_as_threading() -> Any:
    if all(hasattr(plait, name) for name in ("Thread", "Lock", "Event", "currentThread")):
        return plait
    ns = types.SimpleNamespace(**{name: getattr(psync, name) for name in psync.__all__})
    ns.Thread = getattr(plait, "Thread", threading.Thread)
    ns.currentThread = threading.current_thread
    ns.current_thread = threading.current_thread
    return ns


def run_seed(source: str) -> tuple[dict[str, Any], str]:
    """Run ``source`` as a program whose ``import threading`` is plait; return globals, output."""
    lines = []
    for line in textwrap.dedent(source).splitlines():
        if line.startswith("import ") and "threading" in line:
            names = [n.strip() for n in line[len("import ") :].split(",")]
            others = [n for n in names if n != "threading"]
            lines.append("threading = PLAIT" + (f"; import {', '.join(others)}" if others else ""))
        else:
            lines.append(line)
    code = "\n".join(lines)
    env: dict[str, Any] = {"PLAIT": _plait_as_threading(), "__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<seed>", "exec"), env)
    return env, out.getvalue()


def test_race_fixed_with_a_lock() -> None:
    env, _ = run_seed(
        """
        import time
        import threading
        def sub():
            global num
            R.acquire()
            temp = num - 1
            time.sleep(0.001)
            num = temp
            R.release()
        R = threading.Lock()
        num = 100
        thread_list = []
        for i in range(100):
            t = threading.Thread(target=sub)
            t.start()
            thread_list.append(t)
        for t in thread_list:
            t.join()
        print('final num:', num)
        """
    )
    assert env["num"] == 0
    assert env["R"].statistics().waiting == 0


def test_deadlock_program_with_rlock_finishes() -> None:
    env, out = run_seed(
        """
        import threading
        import time
        mutex = threading.RLock()
        mutexA = mutexB = mutex
        class MyThread(threading.Thread):
            def __init__(self):
                threading.Thread.__init__(self)
            def run(self):
                self.fun1()
                self.fun2()
            def fun1(self):
                mutexA.acquire()
                print("I am %s , get res: %s---%s" % (self.name, "ResA", time.time()))
                mutexB.acquire()
                print("I am %s , get res: %s---%s" % (self.name, "ResB", time.time()))
                mutexB.release()
                mutexA.release()
            def fun2(self):
                mutexB.acquire()
                print("I am %s , get res: %s---%s" % (self.name, "ResB", time.time()))
                time.sleep(0.002)
                mutexA.acquire()
                print("I am %s , get res: %s---%s" % (self.name, "ResA", time.time()))
                mutexA.release()
                mutexB.release()
        threads = []
        if __name__ == "__main__":
            for i in range(0, 10):
                my_thread = MyThread()
                my_thread.start()
                threads.append(my_thread)
            for t in threads:
                t.join()
        """
    )
    assert out.count("get res") == 40
    assert not env["mutex"].locked()


def test_deadlock_program_with_two_locks_times_out_instead_of_hanging() -> None:
    a, b = psync.Lock(), psync.Lock()
    a_held, b_held = psync.Event(), psync.Event()
    results: dict[str, bool] = {}

    def one() -> None:
        with a:
            a_held.set()
            b_held.wait()
            results["one"] = b.acquire(timeout=0.05)

    def two() -> None:
        with b:
            b_held.set()
            a_held.wait()
            results["two"] = a.acquire(timeout=0.05)

    threads = [threading.Thread(target=one), threading.Thread(target=two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # At least one side times out; the other may get its lock once the first gives up.
    assert False in results.values()
    for lock in (a, b):
        if lock.locked():
            lock.release()


def test_account_transfer_with_rlock() -> None:
    env, out = run_seed(
        """
        import threading
        class Account:
            def __init__(self, _id, balance):
                self.id = _id
                self.balance = balance
                self.lock = threading.RLock()
            def withdraw(self, amount):
                with self.lock:
                    self.balance -= amount
            def deposit(self, amount):
                with self.lock:
                    self.balance += amount
            def drawcash(self, amount):
                with self.lock:
                    interest = 0.05
                    count = amount + amount * interest
                    self.withdraw(count)
        def transfer(_from, to, amount):
            _from.withdraw(amount)
            to.deposit(amount)
        alex = Account('alex', 1000)
        yuan = Account('yuan', 1000)
        t1 = threading.Thread(target=transfer, args=(alex, yuan, 100))
        t1.start()
        t2 = threading.Thread(target=transfer, args=(yuan, alex, 200))
        t2.start()
        t1.join()
        t2.join()
        alex.drawcash(100)
        print('>>>', alex.balance)
        print('>>>', yuan.balance)
        """
    )
    assert env["alex"].balance == 1000 - 100 + 200 - 105
    assert env["yuan"].balance == 1100 - 200
    assert ">>>" in out


@pytest.mark.filterwarnings("ignore:isSet:DeprecationWarning")
def test_boss_and_workers_with_event() -> None:
    env, out = run_seed(
        """
        import threading, time
        class Boss(threading.Thread):
            def run(self):
                print("BOSS: overtime until 22:00 tonight.")
                print(event.isSet())
                event.set()
                time.sleep(0.05)
                print("BOSS: <22:00> you can go home.")
                print(event.isSet())
                event.set()
        class Worker(threading.Thread):
            def run(self):
                event.wait()
                print("Worker: sigh...")
                time.sleep(0.01)
                event.clear()
                event.wait()
                print("Worker: OhYeah!")
        if __name__ == "__main__":
            event = threading.Event()
            threads = []
            for i in range(5):
                threads.append(Worker())
            threads.append(Boss())
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        """
    )
    assert out.count("Worker: sigh...") == 5
    assert out.count("Worker: OhYeah!") == 5
    assert env["event"].statistics().waiting == 0


@pytest.mark.filterwarnings("ignore:currentThread:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:getName:DeprecationWarning")
def test_semaphore_five_at_a_time() -> None:
    env, out = run_seed(
        """
        import threading
        import time
        semaphore = threading.Semaphore(5)
        inside = 0
        most = 0
        guard = threading.Lock()
        def func():
            global inside, most
            if semaphore.acquire():
                print(threading.currentThread().getName() + ' get semaphore')
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.01)
                with guard:
                    inside -= 1
                semaphore.release()
        threads = []
        for i in range(20):
            t1 = threading.Thread(target=func)
            t1.start()
            threads.append(t1)
        for t in threads:
            t.join()
        """
    )
    assert out.count("get semaphore") == 20
    assert 1 <= env["most"] <= 5
    assert env["semaphore"].statistics().value == 5
