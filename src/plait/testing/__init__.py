"""plait's public test kit: order concurrent events without sleeps that guess.

* :func:`wait_parked` -- block until given strands (or a given number of waiters on an
  object) are parked, then let the test act.
* :class:`Sequencer` -- make steps of several strands happen in a fixed order.
"""

from plait.testing._kit import Sequencer, async_wait_parked, parked_on, wait_parked

__all__ = ["Sequencer", "async_wait_parked", "parked_on", "wait_parked"]
