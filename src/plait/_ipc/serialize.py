"""Serialisation at the call: what crosses a process is pickled where it is sent.

``dumps`` tries the standard pickler first (fast, and what almost every object needs) and
falls back to cloudpickle only for what the standard pickler refuses by reference: lambdas,
closures and functions defined in ``__main__``. When neither can pickle an object, the error
names *where* in the payload the culprit sits (``args[1]['conn']``) and what it is, so the
caller learns at the call, not from a silent loss in a feeder thread.

Exceptions travel as :class:`PackedError`: the exception itself when it pickles and
unpickles, plus its formatted traceback. On the receiving side the traceback text becomes
the ``__cause__`` (as ``concurrent.futures`` does), and an exception that cannot be rebuilt
arrives as :class:`plait.RemoteError` with its type name, message and traceback.
"""

from __future__ import annotations

import copyreg
import io
import multiprocessing.connection
import pickle
import traceback
from collections import ChainMap
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

import cloudpickle

from plait._errors import RemoteError, SerializationError

__all__ = [
    "PackedError",
    "RemoteTraceback",
    "dumps",
    "find_unpicklable",
    "loads",
    "pack_error",
    "unpack_error",
]

PROTOCOL = 5


# multiprocessing's reducers (``ForkingPickler.register``): a ``multiprocessing`` Connection
# or a socket crosses as a duplicate of its OS handle (``DupFd``, through the resource sharer
# once the child runs), as with multiprocessing's own pickler; without them it would cross as
# a bare descriptor number, closed or another file on the other side. The live registry, so
# a reducer registered later is honoured too.
_MP_REDUCERS: dict[type, Callable[[Any], Any]] = ForkingPickler._extra_reducers  # type: ignore[attr-defined]


def _refuse_plain_pickle(obj: Any) -> Any:
    raise TypeError(
        f"cannot pickle {type(obj).__qualname__!r} object with the plain pickler: its OS "
        f"handle must be duplicated for the receiver. Send it through plait (a queue, a "
        f"strand's arguments) or multiprocessing, which do that"
    )


# The plain pickler would pickle a Connection as its bare descriptor number (a socket it
# refuses already). Make it refuse a Connection too: plait's hot paths pickle plainly first
# and fall back to :func:`dumps` (with the reducers above) when that fails, so a Connection
# -- even deep inside an item -- crosses properly at no cost to every other put. (Pickling
# with multiprocessing's or plait's pickler is unaffected: their reducers come first.)
for _cls in list(_MP_REDUCERS):
    if issubclass(_cls, multiprocessing.connection._ConnectionBase):
        copyreg.pickle(_cls, _refuse_plain_pickle)


class _Pickler(pickle.Pickler):
    """The standard pickler with multiprocessing's reducers, deferring to cloudpickle for
    objects pickled by value."""

    def reducer_override(self, obj: Any) -> Any:
        reduce = _MP_REDUCERS.get(type(obj))
        if reduce is not None:
            return reduce(obj)
        if type(obj) is type(_noop) and (
            obj.__module__ == "__main__"
            or obj.__qualname__ != obj.__name__
            or obj.__name__ == "<lambda>"
        ):
            # Lambdas, closures, nested and __main__ functions cannot be found by reference
            # in another process: ship them by value.
            return _by_value(obj)
        return NotImplemented


def _noop() -> None:  # pragma: no cover - only its type is used
    return None


class _CloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """The fallback: cloudpickle (local classes, anything by value) that still knows
    multiprocessing's reducers."""

    dispatch_table = ChainMap(_MP_REDUCERS, cloudpickle.Pickler.dispatch_table)


def _cloud_dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _CloudPickler(buf, protocol=PROTOCOL).dump(obj)
    return buf.getvalue()


def _by_value(obj: Any) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    return (cloudpickle.loads, (_cloud_dumps(obj),))


def dumps(obj: Any, *, what: str = "object") -> bytes:
    """Pickle ``obj``; on failure raise :class:`SerializationError` naming the culprit.

    ``what`` names the payload in the message (``"the arguments of crunch()"``).
    """
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=PROTOCOL).dump(obj)
    except Exception as first:
        try:
            return _cloud_dumps(obj)
        except Exception:
            pass
        path, culprit, reason = find_unpicklable(obj, first)
        where = f" at {path}" if path else ""
        raise SerializationError(
            f"cannot send {what} to another process: {culprit}{where} cannot be pickled "
            f"({reason}). Pass something picklable instead (plain data, a module-level "
            f"function, a plait primitive or queue), or create the object inside the child.",
            path=path,
            culprit=culprit,
        ) from first
    return buf.getvalue()


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Unpickle what :func:`dumps` produced."""
    return pickle.loads(data)


def _try_pickle(obj: Any) -> BaseException | None:
    try:
        _Pickler(io.BytesIO(), protocol=PROTOCOL).dump(obj)
    except Exception as exc:
        try:
            _cloud_dumps(obj)
        except Exception:
            return exc
    return None


def _children(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, tuple | list):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return [(f"[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, set | frozenset):
        return [(f"<item {i}>", v) for i, v in enumerate(obj)]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        return [(f".{k}", v) for k, v in state.items()]
    return []


def find_unpicklable(
    obj: Any, error: BaseException | None = None, *, _path: str = "", _depth: int = 0
) -> tuple[str, str, str]:
    """Return ``(path, description, reason)`` of the innermost object that won't pickle."""
    if _depth < 12:
        for suffix, child in _children(obj):
            child_error = _try_pickle(child)
            if child_error is not None:
                return find_unpicklable(child, child_error, _path=_path + suffix, _depth=_depth + 1)
    text = repr(obj)
    if len(text) > 80:
        text = text[:77] + "..."
    reason = f"{type(error).__name__}: {error}" if error is not None else "unknown reason"
    return _path, f"{type(obj).__qualname__} {text}", reason


class RemoteTraceback(Exception):
    """Carries the formatted traceback of a remote exception; set as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.text,))


class PackedError:
    """An exception ready to cross a process: its pickle (if any) and its traceback text."""

    __slots__ = ("message", "payload", "traceback_text", "type_name")

    def __init__(
        self, type_name: str, message: str, traceback_text: str, payload: bytes | None
    ) -> None:
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            PackedError,
            (self.type_name, self.message, self.traceback_text, self.payload),
        )


def pack_error(exc: BaseException) -> PackedError:
    """Pack ``exc`` with its traceback, whether or not the exception itself pickles."""
    text = "".join(traceback.format_exception(exc))
    payload: bytes | None
    try:
        payload = dumps(exc, what="the exception")
        # An exception whose __reduce__ produces something its __init__ rejects pickles
        # fine and then fails to load: find out here, where we can still describe it.
        pickle.loads(payload)
    except Exception:
        payload = None
    try:
        message = str(exc)
    except Exception:
        message = "<str() failed>"
    return PackedError(type(exc).__qualname__, message, text, payload)


def unpack_error(packed: PackedError) -> BaseException:
    """Rebuild the remote exception, with the remote traceback as its ``__cause__``."""
    exc: BaseException
    if packed.payload is not None:
        try:
            exc = pickle.loads(packed.payload)
        except Exception:
            exc = RemoteError(packed.type_name, packed.message, packed.traceback_text)
    else:
        exc = RemoteError(packed.type_name, packed.message, packed.traceback_text)
    exc.__cause__ = RemoteTraceback(f'\n"""\n{packed.traceback_text}"""')
    return exc
