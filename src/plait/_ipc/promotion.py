"""The one promotion seam: how any public object becomes shared with processes.

A public object that can cross processes -- a queue, a lock, an event, ... -- keeps its
state in a *backend* by composition: its own fields while it is local, a backend object in
its ``_shared`` field once shared (``None``: local). Its class never changes (``type(q) is
plait.Queue`` in every process); its methods ask ``_shared`` on their slow paths and hand
the call over.

:func:`promote` is the one place an object becomes shared: under the object's mutex the
backend of its kind is built from its local fields (:meth:`Backend.adopt`), installed
(``_shared`` and the fields the backend replaces), and the strands parked on the local
state are handed :data:`MIGRATED` (:meth:`Backend.hand_over`): each waits again, on the
backend. :func:`share` is what a public ``__reduce__`` returns; :func:`revive` builds the
public object around the backend a pickle names (:meth:`Backend.attach`), or returns the
very object if it is already known in this process.

What a public class provides (duck typing: this module imports none of them):

* ``_backend_kind`` (its backend's :attr:`Backend.kind`) and ``_backend_home`` (the module
  that registers that backend; imported on first use);
* ``_mutex`` and ``_shared``;
* optionally ``_revive_blank(*args)``, a classmethod that builds the local object a
  revived backend goes into (default: the class called with the pickled ``args``).

Backends know the public objects only by duck typing too, and neither subclass nor import
the public classes (import-linter contracts in ``pyproject.toml`` keep it so).
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["MIGRATED", "Backend", "backend_class", "promote", "register_backend", "revive", "share"]


class _Migrated:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<migrated>"


#: What a waiter is handed when the object it waits on became shared while it waited: it
#: must wait again, on the backend.
MIGRATED: Any = _Migrated()


class Backend:
    """The shared state of one public object, and the kind's operations on it.

    A backend class declares its :attr:`kind` and is registered with
    :func:`register_backend`; its instances have a ``prefix`` (the name it travels by).
    """

    __slots__ = ()
    kind: ClassVar[str] = ""
    prefix: str

    @classmethod
    def adopt(cls, obj: Any) -> tuple[Backend, dict[str, Any]]:
        """(``obj``'s mutex held) A new backend holding ``obj``'s local state, and the
        fields of ``obj`` it replaces (installed on ``obj`` with the backend)."""
        raise NotImplementedError

    @classmethod
    def attach(cls, prefix: str, obj: Any) -> tuple[Backend, dict[str, Any]]:
        """The backend named ``prefix`` (made by another process) for ``obj``, a new local
        object of the public class, and the fields of ``obj`` it replaces."""
        raise NotImplementedError

    def hand_over(self, obj: Any) -> list[Callable[[], object]]:
        """(``obj``'s mutex held, the backend installed) Hand :data:`MIGRATED` to the
        strands parked on ``obj``'s local state; the wake-ups to run once the mutex is
        released."""
        raise NotImplementedError


_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Make ``cls`` the backend of the public classes whose ``_backend_kind`` is its kind."""
    _BACKENDS[cls.kind] = cls
    return cls


def backend_class(public: type) -> type[Backend]:
    """The backend class of the public class ``public`` (its home imported if needed)."""
    kind = getattr(public, "_backend_kind", None)
    if kind is None:
        raise TypeError(
            f"a {public.__name__} cannot be shared with other processes (it has no shared "
            "backend); create it in the process that uses it"
        )
    cls = _BACKENDS.get(kind)
    if cls is None:
        importlib.import_module(public._backend_home)  # type: ignore[attr-defined]
        cls = _BACKENDS[kind]
    return cls


# Shared objects known in this process by backend name, so unpickling one that is already
# here (sent back by a child) returns the very same object.
_known: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_known_lock = threading.Lock()

# Called with each object as it becomes shared, after its local waiters were handed over
# (the deadlock detector forgets the ended local waits that still name it: they would keep
# it, and so its segment, alive).
on_promote: list[Callable[[Any], None]] = []


def _install(obj: Any, backend: Backend, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(obj, name, value)
    obj._shared = backend


def promote(obj: Any) -> Any:
    """Share ``obj`` with other processes: the one place a public object becomes shared.

    Idempotent; returns its backend.
    """
    cls = backend_class(type(obj))
    with obj._mutex:
        backend = obj._shared
        if backend is not None:
            return backend
        backend, fields = cls.adopt(obj)
        _install(obj, backend, fields)
        wakes = backend.hand_over(obj)
        with _known_lock:
            _known[backend.prefix] = obj
    for wake in wakes:
        wake()
    for hook in on_promote:
        hook(obj)
    return backend


def share(obj: Any, args: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """What ``obj.__reduce__`` returns: it is promoted, and travels as its class, the
    arguments that build it, and its backend's name."""
    backend = obj._shared
    if backend is None:
        backend = promote(obj)
    return (revive, (type(obj), args, backend.prefix))


def revive(cls: type, args: tuple[Any, ...], prefix: str) -> Any:
    """Unpickle a shared object: the same object if it is known here, else a new one of
    ``cls`` over the backend named ``prefix``."""
    with _known_lock:
        obj = _known.get(prefix)
    if obj is not None:
        return obj
    obj = getattr(cls, "_revive_blank", cls)(*args)
    backend, fields = backend_class(cls).attach(prefix, obj)
    _install(obj, backend, fields)
    with _known_lock:
        known = _known.get(prefix)
        if known is not None:  # (another thread revived it meanwhile: that one wins)
            return known
        _known[prefix] = obj
    return obj
