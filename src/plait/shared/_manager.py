"""``plait.Manager()``: ``multiprocessing.Manager``'s API over plait's shared objects.

There is no server process: ``dict()``, ``list()``, ``Value``, ``Array`` and ``Namespace``
are plait.shared objects (shared memory, a replica per process), and ``Lock``, ``Queue``
and the other primitives are plait's own, which cross processes by themselves. So
``start()`` and ``join()`` have nothing to do; ``shutdown()`` closes what the manager made:
using one of its objects afterwards, in any process, raises :class:`plait.ClosedError`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from plait._channels import Queue
from plait._errors import ClosedError
from plait._sync import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore
from plait.shared._dict import SharedDict
from plait.shared._list import SharedArray, SharedList, SharedValue
from plait.shared._log import LogBacked
from plait.shared._served import ServedProxy, Server

__all__ = ["Manager", "SharedNamespace"]

_NO_SERVER = (
    "plait.Manager has no server process with an address: its dict, list, Value, Array "
    "and Namespace are shared memory, and its objects reach other processes by being "
    "passed to them (plait.Process args, a Pool task, a process strand, a plait.Queue). "
    "To share objects with a process that was not started from this program, use "
    "multiprocessing.managers.BaseManager(address=..., authkey=...)"
)


class SharedNamespace:
    """``Manager().Namespace()``: attributes shared by processes (kept in a shared dict);
    names that start with ``_`` stay local to the object, as with the Manager's proxy."""

    __slots__ = ("__weakref__", "_d")

    def __init__(self, **kwargs: Any) -> None:
        object.__setattr__(self, "_d", SharedDict(kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._d[name]
        except KeyError:
            raise AttributeError(f"'Namespace' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._d[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._d[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self._d.items())
        return f"Namespace({items})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_namespace, (self._d,))


def _rebuild_namespace(d: SharedDict) -> SharedNamespace:
    ns = SharedNamespace.__new__(SharedNamespace)
    object.__setattr__(ns, "_d", d)
    return ns


class Manager:
    """``multiprocessing.Manager()``'s API with no server process (see the module doc)."""

    _registry: dict[str, tuple[Callable[..., Any], Any]] = {}

    def __init__(self, address: Any = None, authkey: Any = None, *args: Any, **kw: Any) -> None:
        if address is not None:
            raise NotImplementedError(_NO_SERVER)
        self._made: list[Any] = []
        self._closed = False
        self._server: Server | None = None

    # -- what has no meaning without a server -----------------------------------------

    @property
    def address(self) -> Any:
        """plait's manager has no address: ``NotImplementedError`` says what to use."""
        raise NotImplementedError(_NO_SERVER)

    def connect(self) -> None:
        """There is no server to connect to: ``NotImplementedError`` says what to use."""
        raise NotImplementedError(_NO_SERVER)

    def get_server(self) -> Any:
        """There is no server to get: ``NotImplementedError`` says what to use."""
        raise NotImplementedError(_NO_SERVER)

    # -- registered types: served by a plait process ----------------------------------

    @classmethod
    def register(
        cls,
        typeid: str,
        callable: Callable[..., Any] | None = None,
        proxytype: Any = None,
        exposed: Iterable[str] | None = None,
        method_to_typeid: Any = None,
        create_method: bool = True,
    ) -> None:
        """``BaseManager.register``: ``manager.<typeid>(*args)`` makes one
        ``callable(*args)`` in this manager's server process (a plait process, started on
        first use) and returns a proxy whose public methods (or ``exposed``) run there.
        Registering on a subclass leaves ``plait.Manager`` itself unchanged."""
        if callable is None or proxytype is not None or method_to_typeid is not None:
            raise NotImplementedError(
                "plait.Manager.register serves objects made by `callable` through its own "
                "proxy: `proxytype`, `method_to_typeid` and registering without a callable "
                "(a connecting client's side) are not supported; use "
                "multiprocessing.managers.BaseManager for those"
            )
        if "_registry" not in cls.__dict__:
            cls._registry = dict(cls._registry)  # (a subclass's own, as the stdlib's)
        cls._registry[typeid] = (callable, None if exposed is None else tuple(exposed))
        if create_method:

            def create(self: Manager, /, *args: Any, **kwds: Any) -> ServedProxy:
                return self._make_served(typeid, args, kwds)

            create.__name__ = typeid
            setattr(cls, typeid, create)

    def _make_served(self, typeid: str, args: Any, kwds: Any) -> ServedProxy:
        self._check()
        factory, exposed = self._registry[typeid]
        if self._server is None:
            self._server = Server()
            # as the stdlib's: a manager collected without shutdown() stops its server
            weakref.finalize(self, self._server.stop)
        return self._server.make(typeid, factory, args, kwds, exposed)

    # -- a pool -----------------------------------------------------------------------

    def Pool(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
    ) -> Any:
        """A :class:`plait.Pool` (the stdlib's manager serves a ``multiprocessing.Pool``):
        closed by ``shutdown()`` if still open."""
        self._check()
        import plait  # (plait.pool is a sibling layer: the public name, as users write it)

        return self._keep(plait.Pool(processes, initializer, initargs, maxtasksperchild))

    # -- lifetime ---------------------------------------------------------------------

    def start(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to start (no server process); kept for the stdlib's API."""
        self._check()

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for (no server process)."""

    def shutdown(self) -> None:
        """Close every object this manager made, in every process; idempotent."""
        if self._closed:
            return
        self._closed = True
        made, self._made = self._made, []
        for made_obj in made:
            obj = made_obj._d if isinstance(made_obj, SharedNamespace) else made_obj
            if isinstance(obj, LogBacked):
                obj._close_shared()
            elif isinstance(obj, Queue):
                obj.close()
            elif hasattr(obj, "terminate"):  # a Pool
                obj.terminate()
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Manager:
        self._check()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("this Manager was shut down: make a new one")

    def _keep(self, obj: Any) -> Any:
        self._check()
        self._made.append(obj)
        return obj

    # -- shared data ------------------------------------------------------------------

    def dict(self, *args: Any, **kwargs: Any) -> SharedDict:
        self._check()
        return self._keep(SharedDict(*args, **kwargs))  # type: ignore[no-any-return]

    def list(self, sequence: Iterable[Any] = (), /) -> SharedList:
        self._check()
        return self._keep(SharedList(sequence))  # type: ignore[no-any-return]

    def Value(self, typecode: Any, value: Any, lock: Any = True) -> SharedValue:
        self._check()
        return self._keep(SharedValue(typecode, value))  # type: ignore[no-any-return]

    def Array(self, typecode: str, sequence: Iterable[Any], lock: Any = True) -> SharedArray:
        self._check()
        return self._keep(SharedArray(typecode, sequence))  # type: ignore[no-any-return]

    def Namespace(self, **kwargs: Any) -> SharedNamespace:
        self._check()
        return self._keep(SharedNamespace(**kwargs))  # type: ignore[no-any-return]

    # -- primitives: plait's own, which cross processes by themselves ------------------

    def Lock(self) -> Lock:
        self._check()
        return Lock()

    def RLock(self) -> RLock:
        self._check()
        return RLock()

    def Semaphore(self, value: int = 1) -> Semaphore:
        self._check()
        return Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> BoundedSemaphore:
        self._check()
        return BoundedSemaphore(value)

    def Condition(self, lock: Any = None) -> Condition:
        self._check()
        return Condition(lock)

    def Event(self) -> Event:
        self._check()
        return Event()

    def Barrier(self, parties: int, action: Any = None, timeout: float | None = None) -> Barrier:
        self._check()
        return Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0) -> Queue[Any]:
        self._check()
        return self._keep(Queue(maxsize))  # type: ignore[no-any-return]

    JoinableQueue = Queue
