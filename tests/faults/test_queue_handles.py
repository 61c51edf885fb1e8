"""A ``multiprocessing`` Connection or a socket put into a shared ``plait.Queue`` reaches
the other process as a working object, as with ``multiprocessing.Queue`` (issue 11): its
OS handle is duplicated for the receiver, never sent as a bare descriptor number (closed,
or another file, over there)."""

from __future__ import annotations

import multiprocessing
import pickle
import socket
from typing import Any

import pytest

import plait
from plait._ipc import serialize

WAIT_S = 20.0


def _answer_through(q: Any) -> None:
    """A process strand: take a Connection, a socket and a tuple holding a Connection
    from the queue, and answer through each."""
    conn = q.get(timeout=WAIT_S)
    sock = q.get(timeout=WAIT_S)
    label, nested = q.get(timeout=WAIT_S)
    conn.send("through the connection")
    sock.sendall(b"through the socket")
    nested.send(f"through the {label}")
    conn.close()
    sock.close()
    nested.close()


def test_a_connection_and_a_socket_cross_a_shared_queue_and_work_there() -> None:
    q: plait.Queue[Any] = plait.Queue()
    mine, theirs = multiprocessing.Pipe()
    mine2, theirs2 = multiprocessing.Pipe()
    here, there = socket.socketpair()
    here.settimeout(WAIT_S)
    try:
        with plait.TaskGroup() as tg:
            task = tg.spawn(_answer_through, q, on="process")  # the queue is shared now
            q.put(theirs)
            q.put(there)
            q.put(("nested connection", theirs2))
        assert task.exception() is None
        assert mine.poll(WAIT_S) and mine.recv() == "through the connection"
        assert here.recv(64) == b"through the socket"
        assert mine2.poll(WAIT_S) and mine2.recv() == "through the nested connection"
    finally:
        for end in (mine, theirs, mine2, theirs2):
            end.close()
        here.close()
        there.close()


def test_plain_pickle_refuses_a_connection_rather_than_send_its_number() -> None:
    """Outside plait's (and multiprocessing's) pickler a Connection refuses to pickle, as a
    socket does, instead of pickling its descriptor number."""
    a, b = multiprocessing.Pipe()
    try:
        with pytest.raises(TypeError, match="Connection"):
            pickle.dumps(a)
        clone = serialize.loads(serialize.dumps(a))
        try:
            b.send("still works")
            assert clone.poll(WAIT_S) and clone.recv() == "still works"
        finally:
            clone.close()
    finally:
        a.close()
        b.close()
