# ruff: noqa
# A barrier for three parties that only two threads ever reach.
import plait

barrier = plait.Barrier(3)
threads = [plait.Thread(target=barrier.wait, name=f"party-{i}", daemon=True) for i in range(2)]
for t in threads:
    t.start()
from plait.testing import wait_parked

wait_parked(on=barrier, count=2)  # both parties wait: main's join is the last wait
for t in threads:
    t.join()
