"""``plait.shared.list`` and ``Value``: a list and one value shared by processes, over the
shared log (``_log``)."""

from __future__ import annotations

import array
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any, SupportsIndex

from plait.shared._log import Blob, Block, LogBacked, encode, load, store

__all__ = ["SharedArray", "SharedList", "SharedValue"]

_loads = pickle.loads


class SharedList(LogBacked):
    """A list that every process it is passed to sees and changes (``Manager().list()``'s
    API, no server process). Reads come from this process's replica; each write is one
    record under the list's shared lock. ``with items.locked():`` makes a read-modify-write
    atomic; ``update_with(i, fn)`` does one."""

    kind = "list"
    __slots__ = ("_l",)

    def __init__(self, sequence: Iterable[Any] = (), /) -> None:
        self._l: list[Any] = []

        def fill() -> None:
            self._l = [self._store(v) for v in sequence]

        self._create(fill)

    def _store(self, value: Any) -> Any:
        return self._keep(value)

    # -- the replica ------------------------------------------------------------------

    def _reset(self) -> None:
        self._l = []

    def _apply(self, record: tuple[Any, ...]) -> None:
        op = record[0]
        if op == "a":
            self._l.append(record[1])
        elif op == "s":
            self._l[record[1]] = record[2]
        elif op == "d":
            del self._l[record[1]]
        elif op == "i":
            self._l.insert(record[1], record[2])
        elif op == "e":
            self._l.extend(record[1])
        else:  # "S": the whole list (a snapshot, or an operation on many items)
            self._l = list(record[1])

    def _snapshot(self) -> tuple[Any, ...]:
        return ("S", self._l)

    def _stored(self) -> Iterable[Any]:
        return self._l

    def _fresh(self) -> list[Any]:
        if self._hdr[0] != self._word:
            self._catch_up()
        return self._l

    # -- reading ----------------------------------------------------------------------

    def __getitem__(self, index: Any) -> Any:
        if self._hdr[0] != self._word:
            self._catch_up()
        if isinstance(index, slice):
            return [load(v) for v in self._l[index]]
        v = self._l[index]
        return _loads(v.data) if type(v) is Blob else v

    def __len__(self) -> int:
        return len(self._fresh())

    def __iter__(self) -> Iterator[Any]:
        items: list[Any] = self.copy()
        return iter(items)

    def __reversed__(self) -> Iterator[Any]:
        return iter(self.copy()[::-1])

    def __contains__(self, value: object) -> bool:
        return value in self.copy()

    def count(self, value: Any) -> int:
        return self.copy().count(value)

    def index(self, value: Any, start: SupportsIndex = 0, stop: SupportsIndex = 2**62) -> int:
        return self.copy().index(value, start, stop)

    def copy(self) -> list[Any]:
        """A plain list with the contents now."""
        return [load(v) for v in list(self._fresh())]

    def __repr__(self) -> str:
        return repr(self.copy())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedList):
            other = other.copy()
        return self.copy() == other

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Iterable[Any]) -> list[Any]:
        return self.copy() + list(other)

    def __mul__(self, n: int) -> list[Any]:
        return self.copy() * n

    __rmul__ = __mul__

    # -- writing ----------------------------------------------------------------------

    def _write(
        self, change: Callable[[list[Any]], tuple[Any, ...]], made: Iterable[Any] = ()
    ) -> Any:
        """Under the lock: ``change(replica)`` checks the operation and returns its record
        (or raises, nothing changed); the record is logged, then applied to the replica.
        ``made``: the stored values the write brings (their large values' segments are
        removed if it fails)."""
        try:
            publish = self._begin()
        except BaseException:
            self._discard_all(made)
            raise
        try:
            try:
                record = change(self._l)
                self._append(encode(record))
            except BaseException:
                self._discard_all(made)
                raise
            op = record[0]
            gone = self._l if op == "S" else (self._l[record[1]],) if op in "sd" else ()
            large = {v.name for v in gone if type(v) is Blob and v.name is not None}
            self._apply(record)
            if large:  # (a large value may sit in several places: `items *= 2`)
                large.difference_update(
                    v.name for v in self._l if type(v) is Blob and v.name is not None
                )
                self._dropped.extend(large)
            return record
        finally:
            self._end(publish)

    def _discard_all(self, made: Iterable[Any]) -> None:
        for stored in made:
            self._discard(stored)

    def append(self, value: Any) -> None:
        stored = self._store(value)
        self._write(lambda items: ("a", stored), (stored,))

    def extend(self, values: Iterable[Any]) -> None:
        stored = [self._store(v) for v in values]
        self._write(lambda items: ("e", stored), stored)

    def __iadd__(self, values: Iterable[Any]) -> SharedList:
        self.extend(values)
        return self

    def __imul__(self, n: int) -> SharedList:
        self._write(lambda items: _whole(items, items * n))
        return self

    def insert(self, index: SupportsIndex, value: Any) -> None:
        stored = self._store(value)

        def change(items: list[Any]) -> tuple[Any, ...]:
            i = index.__index__()
            i = min(max(i + len(items) if i < 0 else i, 0), len(items))
            return ("i", i, stored)

        self._write(change, (stored,))

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            stored = [self._store(v) for v in value]

            def change_slice(items: list[Any]) -> tuple[Any, ...]:
                new = list(items)
                new[index] = stored
                return _whole(items, new)

            self._write(change_slice, stored)
            return
        stored_one = self._store(value)

        def change(items: list[Any]) -> tuple[Any, ...]:
            i = _position(items, index)
            return ("s", i, stored_one)

        self._write(change, (stored_one,))

    def __delitem__(self, index: Any) -> None:
        if isinstance(index, slice):

            def change_slice(items: list[Any]) -> tuple[Any, ...]:
                new = list(items)
                del new[index]
                return _whole(items, new)

            self._write(change_slice)
            return

        def change(items: list[Any]) -> tuple[Any, ...]:
            return ("d", _position(items, index))

        self._write(change)

    def pop(self, index: SupportsIndex = -1) -> Any:
        got: list[Any] = []

        def change(items: list[Any]) -> tuple[Any, ...]:
            if not items:
                raise IndexError("pop from empty list")
            i = _position(items, index)
            got.append(items[i])
            return ("d", i)

        self._write(change)
        return load(got[0])

    def remove(self, value: Any) -> None:
        def change(items: list[Any]) -> tuple[Any, ...]:
            return ("d", [load(v) for v in items].index(value))  # ValueError if absent

        self._write(change)

    def clear(self) -> None:
        self._write(lambda items: _whole(items, []))

    def reverse(self) -> None:
        self._write(lambda items: _whole(items, items[::-1]))

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        def change(items: list[Any]) -> tuple[Any, ...]:
            pairs = [(load(v), v) for v in items]
            pairs.sort(key=(lambda p: key(p[0])) if key else (lambda p: p[0]), reverse=reverse)
            return _whole(items, [v for _, v in pairs])

        self._write(change)

    def update_with(self, index: SupportsIndex, fn: Callable[[Any], Any]) -> Any:
        """Set ``items[index] = fn(items[index])`` atomically and return the new value."""
        with self.locked():
            new = fn(self[index])
            self[index] = new
            return new


def _position(items: list[Any], index: Any) -> int:
    i = int(index.__index__())
    n = len(items)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError("list index out of range")
    return i


def _whole(items: list[Any], new: list[Any]) -> tuple[Any, ...]:
    return ("S", list(new))


class SharedArray(SharedList):
    """``Manager().Array(typecode, sequence)``: a shared list whose items must fit
    ``typecode`` (as ``array.array``'s; ``TypeError``/``OverflowError`` otherwise)."""

    kind = "array"
    __slots__ = ("typecode",)

    def __init__(self, typecode: str, sequence: Iterable[Any] = (), /) -> None:
        array.array(typecode)  # ValueError for a bad typecode
        self.typecode = typecode
        super().__init__(sequence)

    def _store(self, value: Any) -> Any:
        return store(array.array(self.typecode, [value])[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_array, (super().__reduce__(), self.typecode))


def _rebuild_array(reduced: tuple[Any, ...], typecode: str) -> SharedArray:
    fn, args = reduced
    obj: SharedArray = fn(*args)
    obj.typecode = typecode
    return obj


class SharedValue(LogBacked):
    """One value shared by processes (``Manager().Value``'s ``.value``, ``get()``,
    ``set()``; and ``multiprocessing.Value``'s ``get_lock()``): ``with v.get_lock():
    v.value += 1`` is atomic across processes."""

    kind = "value"
    __slots__ = ("_v", "typecode")

    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self.typecode = typecode
        self._v = None

        def fill() -> None:
            self._v = self._keep(value)

        self._create(fill)

    def _reset(self) -> None:
        self._v = None

    def _apply(self, record: tuple[Any, ...]) -> None:
        old, self._v = self._v, record[1]
        if old is not self._v:
            self._drop(old)

    def _snapshot(self) -> tuple[Any, ...]:
        return ("S", self._v)

    def _stored(self) -> Iterable[Any]:
        return (self._v,)

    def get(self) -> Any:
        if self._hdr[0] != self._word:
            self._catch_up()
        v = self._v
        return _loads(v.data) if type(v) is Blob else v

    def set(self, value: Any) -> None:
        record = ("S", self._keep(value))
        self._commit(record, encode(record))

    value = property(get, set)

    def get_lock(self) -> Block:
        """The value's lock (``with v.get_lock():``; also ``acquire()``/``release()``):
        writes made while holding it are published together when it is released."""
        return Block(self)

    def update_with(self, fn: Callable[[Any], Any]) -> Any:
        """Set ``v.value = fn(v.value)`` atomically and return the new value."""
        with self.locked():
            new = fn(self.get())
            self.set(new)
            return new

    def __repr__(self) -> str:
        return f"Value({self.typecode!r}, {self.get()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_value, (super().__reduce__(), self.typecode))


def _rebuild_value(reduced: tuple[Any, ...], typecode: Any) -> SharedValue:
    fn, args = reduced
    obj: SharedValue = fn(*args)
    obj.typecode = typecode
    return obj
