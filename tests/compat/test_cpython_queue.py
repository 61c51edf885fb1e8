"""CPython's ``test.test_queue`` (from the interpreter that runs it) against plait's queues.

The suite parametrises itself by a queue *module*: each test class has a ``queue`` attribute
(``py_queue`` or ``c_queue``, built with ``import_fresh_module``) and reads ``Queue``,
``LifoQueue``, ``PriorityQueue``, ``SimpleQueue``, ``Empty``, ``Full`` and (3.13)
``ShutDown`` from it. The adapter is a module-like namespace holding plait's classes under
those names, and one ``unittest`` class per suite class, as a user would write it.
"""

from __future__ import annotations

import types
import unittest

import plait

tq = __import__("test.test_queue", fromlist=["*"])

plait_queue = types.SimpleNamespace(
    Queue=plait.Queue,
    LifoQueue=plait.LifoQueue,
    PriorityQueue=plait.PriorityQueue,
    SimpleQueue=plait.SimpleQueue,
    Empty=plait.Empty,
    Full=plait.Full,
    ShutDown=plait.ShutDown,
)


class PlaitQueueTest(tq.QueueTest, unittest.TestCase):
    queue = plait_queue


class PlaitLifoQueueTest(tq.LifoQueueTest, unittest.TestCase):
    queue = plait_queue


class PlaitPriorityQueueTest(tq.PriorityQueueTest, unittest.TestCase):
    queue = plait_queue


class PlaitFailingQueueTest(tq.FailingQueueTest, unittest.TestCase):
    """A subclass overriding ``_put``/``_get`` (queue's extension points) gets them called."""

    queue = plait_queue


class PlaitSimpleQueueTest(tq.CSimpleQueueTest):
    """``SimpleQueue``'s tests, including the C implementation's own (reentrant ``put``)."""

    queue = plait_queue
