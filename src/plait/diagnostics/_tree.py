"""Dumps of a process tree: a process's strands, then each plait child's, under its parent.

A process that serves dumps makes the plait children it starts (pool workers, process
strands' workers, ``plait.Process``) serve them too: each child looks for its parent's dump
socket as it starts (:func:`_serve_if_parent_does`, run from the lifeline's start hook). A
tree dump then walks the OS process tree below the asked process (``/proc``) and asks every
descendant that serves for its own strands; a process between them that does not serve
(the fork server) is skipped, and its children are shown under the nearest one that does.
"""

from __future__ import annotations

import os
from typing import Any

from plait._ipc import lifeline
from plait.diagnostics import _dump, _server

__all__ = ["descendants", "render_tree", "tree"]

_PROC = "/proc"


def _parent_pids() -> dict[int, int]:
    """pid -> ppid of every process we can see (empty where there is no ``/proc``)."""
    parents: dict[int, int] = {}
    try:
        names = os.listdir(_PROC)
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{_PROC}/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 2:
            parents[int(name)] = int(fields[1])
    return parents


def descendants(pid: int) -> dict[int, list[int]]:
    """Every process below ``pid``, as parent -> its children (sorted by pid)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parent_pids().items():
        children.setdefault(parent, []).append(child)
    below: dict[int, list[int]] = {}
    todo = [pid]
    while todo:
        here = todo.pop()
        kids = sorted(children.get(here, ()))
        if kids:
            below[here] = kids
            todo.extend(kids)
    return below


def _ask(pid: int, timeout: float) -> dict[str, Any]:
    import json

    try:
        data: dict[str, Any] = json.loads(_server.request_dump(pid, "json", timeout))
    except _server.DumpRequestError as exc:
        return {"pid": pid, "error": str(exc), "strands": []}
    except ValueError as exc:
        return {"pid": pid, "error": f"its answer was not a dump: {exc}", "strands": []}
    data.pop("children", None)
    return data


def _serving(pid: int) -> bool:
    try:
        return _server.socket_path(pid).exists()
    except OSError:
        return False


def tree(
    pid: int | None = None, *, timeout: float = 10.0, own: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The dump of process ``pid`` (default: this one) and, under ``"children"``, of each
    plait process below it that serves dumps, nested as the processes are."""
    if pid is None or pid == os.getpid():
        pid = os.getpid()
        root = own if own is not None else {"pid": pid, "strands": _dump.snapshot()}
    else:
        root = _ask(pid, timeout)
    below = descendants(pid)

    def gather(parent: int, parent_data: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for child in below.get(parent, ()):
            if _serving(child):
                entry = _ask(child, timeout)
                entry["ppid"] = parent_data["pid"]
                entry["strand"] = _strand_in(parent_data, child)
                entry["children"] = gather(child, entry)
                found.append(entry)
            else:  # not a plait process that serves (the fork server): look below it
                found.extend(gather(child, parent_data))
        return found

    root["children"] = gather(pid, root)
    return root


def _strand_in(parent: dict[str, Any], pid: int) -> str | None:
    """The parent's process strand running in process ``pid`` (None for a pool worker)."""
    for record in parent.get("strands", ()):
        if record.get("kind") == "process" and record.get("pid") == pid:
            return f"process {record['name']!r} #{record['id']}"
    return None


def render_tree(data: dict[str, Any], indent: str = "") -> str:
    """A tree from :func:`tree` as text: each process's strands, then its children's,
    indented under it."""
    if data.get("error"):
        body = f"plait dump of process {data['pid']}: {data['error']}\n"
    else:
        body = _dump._text(data.get("strands", []), data["pid"])
    lines = [indent + line if line else line for line in body.splitlines()]
    text = "\n".join(lines) + "\n"
    for child in data.get("children", ()):
        runs = f", running {child['strand']}" if child.get("strand") else ""
        text += f"\n{indent}  -- child process {child['pid']} of {data['pid']}{runs} --\n"
        text += render_tree(child, indent + "  ")
    return text


def _serve_if_parent_does(parent_pid: int) -> None:
    """In a starting plait child: serve dumps when its parent does (never raises: a child
    that cannot serve still runs)."""
    try:
        if _serving(parent_pid):
            _server.serve_dumps()
    except Exception:
        pass


lifeline.child_started_hooks.append(_serve_if_parent_does)
