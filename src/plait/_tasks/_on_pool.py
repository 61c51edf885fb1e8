"""``tg.spawn(fn, *args, on=pool)``: one strand run as one task on a pool.

The strand is a thread strand of this process that submits ``fn(*args)`` to the pool and
waits for it. That wait parks through the kernel, so the strand's cancellation (its group
failing, a cancel scope, ``timeout=``) ends the wait, and a cancelled pool wait cancels
the task itself (on a local pool its worker is replaced; on a cluster its engine future
is cancelled). The task's exception is the strand's, with the remote traceback as its
``__cause__``. Any object with ``apply(fn, args)`` serves (``plait.Pool``, local or a
cluster's): this layer does not import the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from plait._core.awaitables import describe_callable

__all__ = ["OnPool", "SupportsApply", "check_pool"]


class SupportsApply(Protocol):
    def apply(self, func: Callable[..., Any], args: Sequence[Any] = ...) -> Any: ...


class OnPool:
    """The thread strand's target: run ``fn(*args)`` on ``pool`` and wait for it."""

    __slots__ = ("__qualname__", "fn", "pool")

    def __init__(self, pool: SupportsApply, fn: Callable[..., Any]) -> None:
        self.pool = pool
        self.fn = fn
        self.__qualname__ = getattr(fn, "__qualname__", None) or type(fn).__name__

    def __call__(self, *args: Any) -> Any:
        return self.pool.apply(self.fn, args)


def check_pool(on: object, fn: Callable[..., Any], isolated: bool) -> SupportsApply:
    """``on`` as a pool, or a clear error."""
    if not callable(getattr(on, "apply", None)):
        raise TypeError(
            f"on= takes a strand kind ('async', 'thread', 'process', 'cpu', 'green') or a "
            f"pool (plait.Pool) to run {describe_callable(fn)} on, not {on!r}"
        )
    if isolated:
        raise ValueError("isolated=True is for process strands; a pool task runs on its pool")
    return on  # type: ignore[return-value]
