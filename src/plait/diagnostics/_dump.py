"""``plait.dump()``: every strand of this process, what it waits on and where it is.

One record per strand -- coroutine tasks (on any loop), threads (plait's and the stdlib's,
which show as ``thread`` with ``plait: false``) and process strands -- with its state, the
object it waits on and that object's owner, how long it has waited (known in debug mode),
its stack (a coroutine's too, followed through what it awaits) and its parent (the scope or
group that owns it). Text for people, JSON for tools.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import IO, Any

from plait._core.strands import Strand, all_strands
from plait._sync._lock import _LockCore
from plait.diagnostics import _stacks

__all__ = ["dump", "render", "snapshot"]


class _Since:
    """When each strand began its current wait (filled in by debug mode's instrument)."""

    __slots__ = ("parked_at",)

    def __init__(self) -> None:
        self.parked_at: Any = None  # a WeakKeyDictionary strand -> time.monotonic()


since = _Since()


def _owner_of(obj: object) -> Strand | None:
    if isinstance(obj, _LockCore):
        return obj._holder()
    return None


def _frames(strand: Strand, here: Any) -> list[Any]:
    try:
        return _stacks.frames_of(strand, current=here if _is_current(strand) else None)
    except Exception:
        return []


def _is_current(strand: Strand) -> bool:
    return strand.kind == "thread" and strand.ident == threading.get_ident()


def _describe_obj(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} at {id(obj):#x}>"
    return text if len(text) <= 200 else text[:197] + "..."


def _record(strand: Strand, here: Any, now: float) -> dict[str, Any]:
    on = strand.parked_on if strand.state == "parked" else None
    owner = _owner_of(on) if on is not None else None
    waited = None
    parked_at = since.parked_at
    if on is not None and parked_at is not None:
        try:
            started = parked_at.get(strand)
        except TypeError:
            started = None
        if started is not None:
            waited = round(now - started, 6)
    frames = _frames(strand, here)
    parent = strand.parent
    return {
        "id": strand.sid,
        "kind": strand.kind,
        "name": strand.name,
        "state": strand.state,
        "plait": True,
        "waits_on": None if on is None else _describe_obj(on),
        "waits_on_name": None if on is None else _stacks.name_of(on, frames),
        "owner": None if owner is None else _stacks.describe_strand(owner),
        "waiting_s": waited,
        "parent": None if parent is None else _describe_obj(parent),
        "pid": strand.pid,
        "stack": [_stacks.site_of(f) for f in frames],
    }


def snapshot() -> list[dict[str, Any]]:
    """Every strand of this process as plain data (what ``dump(format="json")`` prints)."""
    here = sys._getframe(1)
    now = time.monotonic()
    records = [_record(s, here, now) for s in all_strands() if s.state != "done"]
    known = {s.ident for s in all_strands() if s.kind == "thread"}
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread.ident in known:
            continue
        if thread.ident == threading.get_ident():
            stack = _stacks._chain(here)
        else:
            stack = _stacks._chain(frames.get(thread.ident or 0))
        records.append(
            {
                "id": None,
                "kind": "thread",
                "name": thread.name,
                "state": "running" if thread.is_alive() else "done",
                "plait": False,
                "waits_on": None,
                "waits_on_name": None,
                "owner": None,
                "waiting_s": None,
                "parent": None,
                "pid": os.getpid(),
                "stack": [_stacks.site_of(f) for f in stack],
            }
        )
    return records


def _text(records: list[dict[str, Any]], pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    lines = [f"plait dump of process {pid}: {len(records)} strands"]
    for r in records:
        ident = f"#{r['id']}" if r["id"] is not None else "(not a plait strand)"
        where = f" in process {r['pid']}" if r["kind"] == "process" and r["pid"] else ""
        lines.append(f"\n{r['kind']} {r['name']!r} {ident}{where}: {r['state']}")
        if r["waits_on"] is not None:
            name = f" ({r['waits_on_name']})" if r["waits_on_name"] else ""
            wait = f"  waits on {r['waits_on']}{name}"
            if r["owner"]:
                wait += f", held by {r['owner']}"
            if r["waiting_s"] is not None:
                wait += f", for {r['waiting_s']:.3f} s"
            lines.append(wait)
        if r["parent"]:
            lines.append(f"  in {r['parent']}")
        if r["stack"]:
            lines.append("  stack (most recent call last):")
            lines.extend(f"    {site}" for site in r["stack"])
    return "\n".join(lines) + "\n"


def render(records: list[dict[str, Any]], format: str) -> str:
    """``records`` (from :func:`snapshot`) as ``"text"`` or ``"json"``."""
    if format == "json":
        return json.dumps({"pid": os.getpid(), "strands": records}, indent=2) + "\n"
    return _text(records)


def dump(file: IO[str] | None = None, *, format: str = "text") -> str:
    """Write every strand of this process and of the plait processes below it to ``file``
    (default ``sys.stderr``), as ``format`` ``"text"`` or ``"json"``; return what was
    written.

    Each strand shows its kind, name, state, what it waits on and who holds that, how long
    it has waited (in debug mode), its stack (a coroutine's too) and its scope or group.
    A child process is included when it serves dumps (it does when its parent does: see
    :func:`plait.diagnostics.serve_dumps`); its strands are listed under it.
    """
    if format not in ("text", "json"):
        raise ValueError(f"dump(format=...) must be 'text' or 'json', not {format!r}")
    from plait.diagnostics import _tree

    data = _tree.tree(own={"pid": os.getpid(), "strands": snapshot()})
    text = json.dumps(data, indent=2) + "\n" if format == "json" else _tree.render_tree(data)
    out = sys.stderr if file is None else file
    out.write(text)
    out.flush()
    return text
