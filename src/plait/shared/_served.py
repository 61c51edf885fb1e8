"""``Manager.register``'s objects: one instance served by a plait process, reached by proxies.

What a user of ``BaseManager.register('Counter', Counter)`` expects is one object that every
process changes through a proxy: its methods run where the object lives and their results
come back as copies. plait keeps that meaning. A manager starts its *server* -- a plait
process -- the first time a registered type is made; each proxy sends ``(object, method,
args, kwargs, reply queue)`` over a plait Queue and waits for the answer, raising what the
method raised. The objects live until the manager shuts down (no reference counting, as
there is no proxy tracking: a manager that makes many short-lived objects should reuse them).
The shared dict, list, Value and Namespace need none of this: they are shared memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from plait._channels import Queue
from plait._errors import BrokenResourceError, ClosedError
from plait._processes import Process
from plait.shared._log import pid_running

__all__ = ["ServedProxy", "Server"]

_POLL = 1.0  # a proxy waiting for an answer looks this often whether the server still runs


def _public(obj: Any) -> list[str]:
    return [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]


def _serve(requests: Queue[Any]) -> None:
    """The server's loop: make objects and run their methods until told to stop."""
    objects: dict[int, tuple[Any, frozenset[str]]] = {}
    while True:
        request = requests.get()
        if request is None:
            return
        reply: Queue[Any] = request[-1]
        try:
            if request[0] == "make":
                _, oid, factory, args, kwargs, exposed, _reply = request
                obj = factory(*args, **kwargs)
                names = frozenset(exposed if exposed is not None else _public(obj))
                objects[oid] = (obj, names)
                answer: tuple[str, Any] = ("ok", sorted(names))
            else:
                _, oid, name, args, kwargs, _reply = request
                obj, names = objects[oid]
                if name not in names:
                    raise AttributeError(f"method {name!r} of a served object is not exposed")
                answer = ("ok", getattr(obj, name)(*args, **kwargs))
        except Exception as exc:
            answer = ("err", exc)
        try:
            reply.put(answer)
        except Exception as exc:  # (the result or the exception could not be pickled)
            reply.put(("err", TypeError(f"the served object's answer cannot be sent: {exc}")))


class Server:
    """The process that serves one manager's registered objects (started when needed)."""

    def __init__(self) -> None:
        self.requests: Queue[Any] = Queue()
        self.process = Process(target=_serve, args=(self.requests,), daemon=True)
        self.process.start()
        self._ids = 0
        self._lock = threading.Lock()

    def make(
        self,
        typeid: str,
        factory: Callable[..., Any],
        args: Any,
        kwargs: Any,
        exposed: Iterable[str] | None,
    ) -> ServedProxy:
        with self._lock:
            self._ids += 1
            oid = self._ids
        proxy = ServedProxy(typeid, oid, self.requests, self.process.pid or 0, None)
        names = proxy._ask(("make", oid, factory, args, kwargs, exposed and list(exposed)))
        proxy._exposed = frozenset(names)
        return proxy

    def stop(self) -> None:
        """End the server (idempotent): its objects go with it."""
        if self.requests.closed:
            return
        try:
            self.requests.put(None)
        except ClosedError:
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.requests.close()


class ServedProxy:
    """A proxy for one served object: ``proxy.method(*args)`` runs ``method`` on the object
    in the manager's server process and returns (a copy of) its result. Picklable: pass it
    to any plait process, pool worker or process strand."""

    def __init__(
        self,
        typeid: str,
        oid: int,
        requests: Queue[Any],
        pid: int,
        exposed: frozenset[str] | None,
    ) -> None:
        self._typeid = typeid
        self._oid = oid
        self._requests = requests
        self._pid = pid
        self._exposed = exposed
        self._reply: Queue[Any] | None = None
        self._call_lock = threading.Lock()

    def _ask(self, request: tuple[Any, ...]) -> Any:
        with self._call_lock:
            if self._reply is None:
                self._reply = Queue()
            reply = self._reply
            try:
                self._requests.put((*request, reply))
            except ClosedError:
                raise ClosedError(
                    f"the manager serving this {self._typeid} was shut down"
                ) from None
            while True:
                try:
                    kind, value = reply.get(timeout=_POLL)
                    break
                except queue.Empty:
                    if not pid_running(self._pid):
                        raise BrokenResourceError(
                            f"the manager process serving this {self._typeid} is gone "
                            "(shut down or killed): its objects went with it"
                        ) from None
        if kind == "err":
            raise value
        return value

    def _callmethod(self, name: str, args: tuple[Any, ...] = (), kwds: Any = None) -> Any:
        """Run ``name`` on the served object (the stdlib proxies' spelling)."""
        return self._ask(("call", self._oid, name, args, dict(kwds or {})))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        exposed = self._exposed
        if exposed is not None and name not in exposed:
            raise AttributeError(
                f"{self._typeid!r} proxy has no method {name!r} (exposed: {sorted(exposed)})"
            )

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._callmethod(name, args, kwargs)

        method.__name__ = name
        return method

    def __reduce__(self) -> tuple[Any, ...]:
        return (ServedProxy, (self._typeid, self._oid, self._requests, self._pid, self._exposed))

    def __repr__(self) -> str:
        return f"<plait served {self._typeid} proxy #{self._oid} in process {self._pid}>"
