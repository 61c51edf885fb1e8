"""Shared state across processes without a server process: dict, list, Value, Array,
Namespace and a ``multiprocessing.Manager``-compatible :class:`Manager` (see ``_log`` for
how: an append-only log in shared memory and a replica in each process)."""

from __future__ import annotations

from plait.shared._dict import SharedDict
from plait.shared._list import SharedArray, SharedList, SharedValue
from plait.shared._manager import Manager, SharedNamespace

# Manager().dict()'s names, for plait.shared.dict() and friends.
dict = SharedDict
list = SharedList
Value = SharedValue
Array = SharedArray
Namespace = SharedNamespace

__all__ = [
    "Array",
    "Manager",
    "Namespace",
    "SharedArray",
    "SharedDict",
    "SharedList",
    "SharedNamespace",
    "SharedValue",
    "Value",
    "dict",
    "list",
]
