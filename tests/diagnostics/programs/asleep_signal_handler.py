# ruff: noqa
# A main thread woken by its own signal handler is not a deadlock.
import signal, os
import plait

event = plait.Event()
signal.signal(signal.SIGALRM, lambda *_: event.set())
signal.setitimer(signal.ITIMER_REAL, 0.2)
event.wait()
print("woken by the handler")
