# ruff: noqa
# A thread that sleeps (outside plait) before it sets the event: never a deadlock.
import time
import plait

event = plait.Event()


def later():
    time.sleep(0.3)
    event.set()


t = plait.Thread(target=later)
t.start()
event.wait()
t.join()
print("set")
