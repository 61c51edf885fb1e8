"""``plait.shared.dict``: a dict shared by processes, over the shared log (``_log``)."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from plait.shared._log import _SCALARS, Blob, LogBacked, encode, load

__all__ = ["SharedDict"]

_loads = pickle.loads
_dumps = pickle.dumps
_MISSING: Any = object()


class SharedDict(LogBacked, MutableMapping[Any, Any]):
    """A dict that every process it is passed to sees and changes (``Manager().dict()``'s
    API, no server process).

    Reads are served from this process's replica once one shared counter says it is up to
    date; a write takes the dict's shared lock for microseconds. Keys and values are
    anything picklable; reading a mutable value returns a fresh copy (changing it changes
    nothing shared: assign it back, or use :meth:`update_with`). ``with d.locked():`` makes a
    read-modify-write atomic (``d[k] += 1`` alone is not, as with the Manager's).
    """

    kind = "dict"
    __slots__ = ("_d",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._d: dict[Any, Any] = {}

        def fill() -> None:
            keep = self._keep
            self._d = {k: keep(v) for k, v in dict(*args, **kwargs).items()}

        self._create(fill)

    # -- the replica ------------------------------------------------------------------

    def _reset(self) -> None:
        self._d = {}

    def _apply(self, record: tuple[Any, ...]) -> None:
        op = record[0]
        d = self._d
        if op == "s":
            old = d.get(record[1])
            d[record[1]] = record[2]
            if type(old) is Blob and old.name is not None:
                self._drop(old)
        elif op == "d":
            self._drop(d.pop(record[1], None))
        elif op == "u":
            for k, v in record[1]:
                self._drop(d.get(k))
                d[k] = v
        elif op == "c":
            for v in d.values():
                self._drop(v)
            d.clear()
        else:  # "S": a generation's snapshot
            self._d = dict(record[1])

    def _snapshot(self) -> tuple[Any, ...]:
        return ("S", self._d)

    def _stored(self) -> Iterable[Any]:
        return self._d.values()

    def _fresh(self) -> dict[Any, Any]:
        if self._hdr[0] != self._word:
            self._catch_up()
        return self._d

    # -- reading ----------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        if self._hdr[0] != self._word:
            self._catch_up()
        v = self._d[key]
        return _loads(v.data) if type(v) is Blob else v

    def get(self, key: Any, default: Any = None) -> Any:
        if self._hdr[0] != self._word:
            self._catch_up()
        v = self._d.get(key, _MISSING)
        if v is _MISSING:
            return default
        return _loads(v.data) if type(v) is Blob else v

    def __contains__(self, key: object) -> bool:
        return key in self._fresh()

    def __len__(self) -> int:
        return len(self._fresh())

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._fresh()))  # a snapshot: other processes may change it

    def keys(self) -> list[Any]:  # type: ignore[override]
        """The keys now (a list, as the Manager's proxy returns)."""
        return list(self._fresh())

    def values(self) -> list[Any]:  # type: ignore[override]
        """The values now (a list of copies)."""
        return [load(v) for v in list(self._fresh().values())]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """The items now (a list of pairs)."""
        return [(k, load(v)) for k, v in list(self._fresh().items())]

    def copy(self) -> dict[Any, Any]:
        """A plain dict with the contents now."""
        return {k: load(v) for k, v in list(self._fresh().items())}

    def __repr__(self) -> str:
        return repr(self.copy())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedDict):
            other = other.copy()
        return self.copy() == other

    __hash__ = None  # type: ignore[assignment]

    # -- writing ----------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        hash(key)
        stored = value if type(value) in _SCALARS else self._keep(value)
        record = ("s", key, stored)
        try:
            try:
                data = _dumps(record, 5)
            except Exception:
                data = encode(record)
            if not self._commit_under_mutex(data, record):  # (the fast path, one frame less)
                self._commit(record, data)
        except BaseException:
            self._discard(stored)
            raise

    def __delitem__(self, key: Any) -> None:
        hash(key)
        publish = self._begin()
        try:
            if key not in self._d:
                raise KeyError(key)
            self._append(encode(("d", key)))
            self._drop(self._d.pop(key))
        finally:
            self._end(publish)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        hash(key)
        publish = self._begin()
        try:
            v = self._d.get(key, _MISSING)
            if v is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                return default
            self._append(encode(("d", key)))
            del self._d[key]
            self._drop(v)
            return load(v)
        finally:
            self._end(publish)

    def popitem(self) -> tuple[Any, Any]:
        publish = self._begin()
        try:
            if not self._d:
                raise KeyError("popitem(): dictionary is empty")
            key = next(reversed(self._d))
            v = self._d[key]
            self._append(encode(("d", key)))
            del self._d[key]
            self._drop(v)
            return key, load(v)
        finally:
            self._end(publish)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        hash(key)
        stored = self._keep(default)
        record = encode(("s", key, stored))
        publish = self._begin()
        try:
            v = self._d.get(key, _MISSING)
            if v is not _MISSING:
                self._discard(stored)
                return load(v)
            self._append(record)
            self._d[key] = stored
            return default
        finally:
            self._end(publish)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs = list(dict(other, **kwargs).items()) if kwargs else _pairs(other)
        for k, _ in pairs:
            hash(k)
        stored: list[tuple[Any, Any]] = []
        try:
            for k, v in pairs:
                stored.append((k, self._keep(v)))
            if not stored:
                return
            record = ("u", stored)
            self._commit(record, encode(record))
        except BaseException:
            for _, v in stored:  # (nothing was written: no large value made is kept)
                self._discard(v)
            raise

    def clear(self) -> None:
        publish = self._begin()
        try:
            self._append(encode(("c",)))
            self._apply(("c",))
        finally:
            self._end(publish)

    def update_with(self, key: Any, fn: Callable[[Any], Any], default: Any = _MISSING) -> Any:
        """Set ``d[key] = fn(d[key])`` atomically (no other strand or process changes the
        dict in between) and return the new value; a missing key starts from ``default``
        (``KeyError`` without one). ``d.update_with(k, lambda n: n + 1, 0)`` counts."""
        hash(key)
        with self.locked():
            v = self._d.get(key, _MISSING)
            if v is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                old = default
            else:
                old = load(v)
            new = fn(old)
            self[key] = new
            return new


def _pairs(other: Any) -> list[tuple[Any, Any]]:
    if isinstance(other, SharedDict):
        return other.items()
    if hasattr(other, "keys"):
        return [(k, other[k]) for k in other.keys()]  # noqa: SIM118 (any mapping-like)
    pairs: list[tuple[Any, Any]] = []
    for item in other if isinstance(other, Iterable) else ():
        k, v = item
        pairs.append((k, v))
    return pairs
