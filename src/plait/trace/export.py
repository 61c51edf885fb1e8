"""From part files to Chrome trace event JSON, and back from whatever a crash left.

The Chrome format (the JSON object form, which ui.perfetto.dev and chrome://tracing open):
each process is a ``pid``; each strand is a track (``tid`` = the strand's id, named
``"<kind> <name>"``); on it, ``run`` slices (the strand not parked -- for a coroutine:
runnable or running) and ``wait <object>`` slices (parked, with the object, its owner when
known, and the outcome); lock holds and user spans as async slices on the same track;
``spawn``/``exception``/``cancelled`` instants; a flow arrow from the strand that woke a
parked strand (set an event, notified a condition, released a lock, touched a channel, ended
a joined strand) to the strand it woke; a ``depth`` counter per queue (sampled:
at most one point per 100 us); put/get counts per channel in the summary.
``otherData.plait`` says whether the trace is ``partial``, how many events were
``dropped``, the clock, and carries the summary table (:mod:`plait.trace.summary`).

The file is written one event per line (to a temporary name, then renamed), so even a
truncated copy can be read back line by line: :func:`load_trace` does, and says
``partial``.
"""

from __future__ import annotations

import json
import marshal
import os
from collections import defaultdict
from typing import Any

from plait.trace import recorder as r
from plait.trace.summary import summarize

__all__ = ["load_parts", "load_trace", "write_chrome"]

_US = 1000.0  # ns per microsecond (Chrome's unit)
_DEPTH_EVERY_US = 100.0  # a queue's depth counter: at most one sample per 100 us


def _read_lines(path: str) -> tuple[list[Any], bool]:
    """The JSON values of ``path``'s lines, and whether a line could not be read."""
    values: list[Any] = []
    bad = False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                try:
                    values.append(json.loads(line))
                except ValueError:
                    bad = True  # cut short by a crash: keep the rest
    except OSError:
        bad = True
    return values, bad


def _read_blobs(path: str) -> tuple[list[tuple[int, list[Any]]], bool]:
    """The ``(dropped, events)`` records of an events file, and whether one was cut short."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return [], True
    out: list[tuple[int, list[Any]]] = []
    at = 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at : at + 4], "little")
        blob = data[at + 4 : at + 4 + size]
        if len(blob) < size:
            return out, True
        try:
            record = marshal.loads(blob)
        except (ValueError, EOFError, TypeError):
            return out, True
        out.append(record)
        at += 4 + size
    return out, at != len(data)


def load_parts(parts: str, *, complete: bool = False) -> dict[str, Any]:
    """The Chrome trace of a parts folder; ``partial`` unless ``complete`` and intact."""
    names = sorted(os.listdir(parts)) if os.path.isdir(parts) else []
    processes: dict[int, dict[str, Any]] = {}
    strands: dict[tuple[int, int], dict[str, Any]] = {}
    objects: dict[tuple[int, int], str] = {}
    events: list[tuple[int, int, list[Any]]] = []  # (t_ns, pid, event)
    dropped: dict[int, int] = defaultdict(int)
    partial = not complete or not names
    for name in names:
        pid_text, _, rest = name.partition(".")
        if not pid_text.isdigit() or not rest.endswith((".jsonl", ".bin")):
            continue
        pid = int(pid_text)
        path = os.path.join(parts, name)
        if rest.endswith(".bin"):
            batches, bad = _read_blobs(path)
            partial = partial or bad
            for count, batch in batches:
                dropped[pid] = max(dropped[pid], int(count))
                events.extend((int(e[1]), pid, list(e[:5])) for e in batch)
            continue
        values, bad = _read_lines(path)
        partial = partial or bad
        for value in values:
            if not isinstance(value, dict):
                continue
            kind = value.get("meta")
            if kind == "process":
                processes[pid] = value
            elif kind == "strand":
                strands[(pid, int(value["sid"]))] = value
            elif kind == "object":
                objects[(pid, int(value["id"]))] = str(value["label"])
    events.sort(key=lambda e: (e[0], e[1]))
    t0 = min((int(p["t0_ns"]) for p in processes.values()), default=events[0][0] if events else 0)
    channels: dict[str, dict[str, Any]] = {}
    chrome = _to_chrome(events, processes, strands, objects, t0, channels)
    data: dict[str, Any] = {
        "traceEvents": chrome,
        "displayTimeUnit": "ms",
        "otherData": {
            "plait": {
                "partial": partial,
                "dropped": sum(dropped.values()),
                "clock": "CLOCK_MONOTONIC (time.monotonic_ns), shared by every process",
                "t0_ns": t0,
                "processes": sorted(processes),
            }
        },
    }
    data["otherData"]["plait"]["summary"] = summarize(chrome, list(channels.values()))
    return data


class _Track:
    """One strand's state while its events are turned into slices."""

    __slots__ = ("holds", "kind", "run_since", "spans", "wait")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.run_since: float | None = None
        self.wait: tuple[float, str, Any] | None = None
        self.holds: dict[int, list[int]] = defaultdict(list)
        self.spans: dict[str, list[int]] = defaultdict(list)


def _to_chrome(
    events: list[tuple[int, int, list[Any]]],
    processes: dict[int, dict[str, Any]],
    strands: dict[tuple[int, int], dict[str, Any]],
    objects: dict[tuple[int, int], str],
    t0: int,
    channels: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The Chrome events; ``channels`` is filled with each channel's put/get counts."""
    out: list[dict[str, Any]] = []
    root = min(processes, key=lambda p: processes[p]["t0_ns"] if processes else 0, default=None)
    for pid, info in sorted(processes.items()):
        role = "traced program" if info.get("ppid") is None else f"child of {info['ppid']}"
        out.append(_meta("process_name", pid, 0, {"name": f"pid {pid} ({role})"}))
        out.append(_meta("process_sort_index", pid, 0, {"sort_index": 0 if pid == root else pid}))
    for (pid, sid), info in sorted(strands.items()):
        label = f"{info['kind']} {info['name']}"
        out.append(_meta("thread_name", pid, sid, {"name": label}))
        out.append(_meta("thread_sort_index", pid, sid, {"sort_index": sid}))
    tracks: dict[tuple[int, int], _Track] = {}
    touched: dict[tuple[int, int], tuple[int, int, float]] = {}  # object -> last toucher
    wakes: dict[tuple[int, int, int], tuple[int, int, float]] = {}  # (woken, object) -> waker
    puts: dict[tuple[int, int], int] = defaultdict(int)
    gets: dict[tuple[int, int], int] = defaultdict(int)
    for _, _, e in events:
        if e[0] == r.SEND:
            puts[(0, e[3])] += 1
        elif e[0] == r.RECEIVE:
            gets[(0, e[3])] += 1
    both = {k[1] for k in puts if k in gets}
    depth: dict[tuple[int, int], int] = defaultdict(int)
    counts: dict[tuple[int, int], tuple[str, int, int]] = {}  # channel -> its last sample
    sampled: dict[tuple[int, int], float] = {}
    ids = 0
    end = 0.0
    for t_ns, pid, e in events:
        code, _, sid, a, b = e
        ts = (t_ns - t0) / _US
        end = max(end, ts)
        if code == r.COUNTS and isinstance(b, list) and len(b) == 3:
            label = objects.get((pid, a), f"object {a}")
            counts[(pid, a)] = (label, b[0], b[1])
            out.append({"ph": "C", "name": f"puts/gets {label}", "pid": pid,
                        "ts": round(ts, 3), "args": {"puts": b[0], "gets": b[1]}})  # fmt: skip
            if b[2] is not None:
                out.append({"ph": "C", "name": f"depth {label}", "pid": pid,
                            "ts": round(ts, 3), "args": {"items": b[2]}})  # fmt: skip
            continue
        key = (pid, sid)
        track = tracks.get(key)
        if track is None:
            kind = strands.get(key, {}).get("kind", "thread")
            track = tracks[key] = _Track(kind)
            if code not in (r.SPAWN, r.START, r.TASK):
                track.run_since = ts  # first seen mid-run (the main thread, say)
        if code == r.SPAWN:
            out.append(_instant("spawn", pid, sid, ts, {}))
            if track.kind in ("async", "green"):  # no start hook: runnable from here
                track.run_since = ts
        elif code == r.START:
            track.run_since = ts
        elif code == r.PARK:
            _close_run(out, track, pid, sid, ts)
            owner = None if b is None else f"strand #{b}"
            track.wait = (ts, objects.get((pid, a), f"object {a}"), owner)
        elif code == r.UNPARK:
            label = objects.get((pid, a), f"object {a}")
            if track.wait is not None:
                since, label, owner = track.wait
                args = {"object": label, "outcome": b}
                if owner:
                    args["owner"] = owner
                out.append(_slice(f"wait {label}", "wait", pid, sid, since, ts, args))
                track.wait = None
            track.run_since = ts
            waker = wakes.pop((pid, sid, a), None) or touched.get((pid, a))
            if b == "woken" and waker is not None and waker[:2] != key:
                ids += 1
                wpid, wsid, wts = waker
                out.append(_flow("s", ids, wpid, wsid, wts, label))
                out.append(_flow("f", ids, pid, sid, ts, label))
        elif code == r.EXIT:
            _close_run(out, track, pid, sid, ts)
            oid = strands.get(key, {}).get("oid")
            if oid is not None:  # who joins this strand is woken by its end
                touched[(pid, int(oid))] = (pid, sid, ts)
            if a is not None:
                name = "cancelled" if b == "cancelled" else f"exception {a}"
                out.append(_instant(name, pid, sid, ts, {"error": a}))
        elif code == r.WAKE:  # the waker is known exactly: its arrow goes to whom it woke
            wakes[(pid, b, a)] = (pid, sid, ts)
        elif code in (r.ACQUIRE, r.RELEASE):
            label = objects.get((pid, a), f"object {a}")
            if code == r.ACQUIRE:
                ids += 1
                track.holds[a].append(ids)
                out.append(_async("b", f"hold {label}", "lock", ids, pid, sid, ts))
            else:
                touched[(pid, a)] = (pid, sid, ts)
                if track.holds[a]:
                    out.append(
                        _async("e", f"hold {label}", "lock", track.holds[a].pop(), pid, sid, ts)
                    )
        elif code in (r.SEND, r.RECEIVE):
            touched[(pid, a)] = (pid, sid, ts)
            label = objects.get((pid, a), f"object {a}")
            row = channels.setdefault(label, {"channel": label, "puts": 0, "gets": 0})
            row["puts" if code == r.SEND else "gets"] += 1
            if a in both:
                depth[(pid, a)] += 1 if code == r.SEND else -1
                last = sampled.get((pid, a), -_DEPTH_EVERY_US)
                if ts - last >= _DEPTH_EVERY_US:  # one sample per channel per interval
                    sampled[(pid, a)] = ts
                    args = {"items": max(depth[(pid, a)], 0)}
                    out.append({"ph": "C", "name": f"depth {label}", "pid": pid,
                                "ts": round(ts, 3), "args": args})  # fmt: skip
        elif code == r.TASK and isinstance(a, list) and len(a) == 2:
            start = (int(b) - t0) / _US
            what = f"task {a[0]}" + (f" x{a[1]}" if a[1] != 1 else "")
            out.append(_slice(what, "task", pid, sid, start, ts, {"function": a[0], "items": a[1]}))
        elif code == r.SPAN_BEGIN:
            ids += 1
            track.spans[str(a)].append(ids)
            out.append(_async("b", str(a), "span", ids, pid, sid, ts))
        elif code == r.SPAN_END and track.spans[str(a)]:
            out.append(_async("e", str(a), "span", track.spans[str(a)].pop(), pid, sid, ts))
    for label, n_puts, n_gets in counts.values():  # the counts are cumulative: the last
        row = channels.setdefault(label, {"channel": label, "puts": 0, "gets": 0})
        row["puts"] += n_puts
        row["gets"] += n_gets
    for (pid, sid), track in tracks.items():  # still open when the recording stopped
        if track.wait is not None:
            since, label, owner = track.wait
            args = {"object": label, "outcome": "still waiting"}
            out.append(_slice(f"wait {label}", "wait", pid, sid, since, end, args))
        _close_run(out, track, pid, sid, end)
        for stack in track.holds.values():
            for n in stack:
                out.append(_async("e", "hold", "lock", n, pid, sid, end))
        for name, stack in track.spans.items():
            for n in stack:
                out.append(_async("e", name, "span", n, pid, sid, end))
    return out


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}


def _slice(
    name: str, cat: str, pid: int, tid: int, start: float, stop: float, args: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ph": "X",
        "name": name,
        "cat": cat,
        "pid": pid,
        "tid": tid,
        "ts": round(start, 3),
        "dur": round(max(stop - start, 0.0), 3),
        "args": args,
    }


def _close_run(out: list[dict[str, Any]], track: _Track, pid: int, sid: int, ts: float) -> None:
    if track.run_since is not None:
        out.append(_slice("run", "run", pid, sid, track.run_since, ts, {}))
        track.run_since = None


def _instant(
    name: str, pid: int, tid: int, ts: float, args: dict[str, Any], cat: str = "strand"
) -> dict[str, Any]:
    return {"ph": "i", "s": "t", "name": name, "cat": cat, "pid": pid, "tid": tid,
            "ts": round(ts, 3), "args": args}  # fmt: skip


def _async(ph: str, name: str, cat: str, n: int, pid: int, tid: int, ts: float) -> dict[str, Any]:
    return {"ph": ph, "name": name, "cat": cat, "id": n, "pid": pid, "tid": tid, "ts": round(ts, 3)}


def _flow(ph: str, n: int, pid: int, tid: int, ts: float, label: str) -> dict[str, Any]:
    event = {"ph": ph, "name": f"wake via {label}", "cat": "wake", "id": n, "pid": pid,
             "tid": tid, "ts": round(ts, 3)}  # fmt: skip
    if ph == "f":
        event["bp"] = "e"
    return event


def write_chrome(data: dict[str, Any], path: str) -> None:
    """Write ``data`` as Chrome trace JSON, one event per line, atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write('{"traceEvents":[\n')
        events = data["traceEvents"]
        for i, event in enumerate(events):
            f.write(json.dumps(event, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(events) else "\n")
        rest = {k: v for k, v in data.items() if k != "traceEvents"}
        f.write("],\n")
        f.write(json.dumps(rest, separators=(",", ":"))[1:])
        f.write("\n")
    os.replace(tmp, path)


def load_trace(path: str) -> dict[str, Any]:
    """A trace from ``path``: a Chrome JSON file (whole or cut short), or the parts
    folder a crashed run left (``out.json.parts`` is found from ``out.json`` too)."""
    from plait.trace.session import parts_dir_for

    if os.path.isdir(path):
        return load_parts(path)
    if not os.path.exists(path) and os.path.isdir(parts_dir_for(path)):
        return load_parts(parts_dir_for(path))
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, list):  # the JSON array form of the format
        data = {"traceEvents": data}
    if isinstance(data, dict) and isinstance(data.get("traceEvents"), list):
        plait = data.setdefault("otherData", {}).setdefault("plait", {})
        plait.setdefault("partial", False)
        plait.setdefault("dropped", 0)
        plait.setdefault("summary", summarize(data["traceEvents"]))
        return data
    if not text.strip():
        raise ValueError(f"{path!r} is empty: no trace was written there")
    events = []  # cut short: keep every whole event line
    for raw in text.splitlines():
        line = raw.strip().rstrip(",")
        if line.startswith("{") and line.endswith("}"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "ph" in event:
                events.append(event)
    if not events:
        raise ValueError(
            f"{path!r} is not a trace: no Chrome trace events could be read from it "
            f"(expected a file written by plait.trace() or `plait trace -o`)"
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"plait": {"partial": True, "dropped": 0, "summary": summarize(events)}},
    }
