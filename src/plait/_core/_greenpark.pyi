"""Types of the optional C accelerator of green strands' switch step (plait/_core/_greenpark.c)."""

from typing import Any

SEAM: int

class Resume:
    greenlet: Any
    error: BaseException | None
    def __init__(self, greenlet: Any, error: BaseException | None = None) -> None: ...
    def done(self) -> bool: ...
    def set_result(self, value: object, /) -> None: ...

class Scheduler:
    loop: Any
    hub: Any
    ident: int
    scheduled: bool
    ready_count: int
    def __init__(self, loop: Any, ident: int, batch: int = 256) -> None: ...
    def wake(self, resume: Resume, /) -> None: ...
    def run(self) -> None: ...

def configure(greenlet: Any, getcurrent: Any, local: Any) -> None: ...
def configure_park(
    Waiter: type,
    WaitQueue: type,
    green_type: Any,
    QUEUED: int,
    WOKEN: int,
    hooks: Any,
    abandon: Any,
    done: Any,
) -> None: ...
def enqueue(queue: Any, greenlet: Any, on: object, data: Any, /) -> Any: ...
def park(waiter: Any, check: Any, undo: Any, /) -> bool: ...
def enqueue_current_for(queue_type: type, python_method: Any, /) -> Any: ...
