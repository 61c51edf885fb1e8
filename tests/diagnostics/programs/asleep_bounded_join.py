# ruff: noqa
# The joiner is the only consumer: the producer waits for room, the joiner for its end.
import plait

q = plait.Queue(maxsize=1)


def produce():
    for i in range(3):
        q.put(i)


producer = plait.Thread(target=produce, name="producer", daemon=True)
producer.start()
from plait.testing import wait_parked

wait_parked(on=q, count=1)  # the producer waits for room: main's join is the last wait
producer.join()
