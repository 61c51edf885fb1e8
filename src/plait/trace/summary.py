"""The summary table of a trace: who ran, who waited on what, which locks were contended,
how busy each process (a pool worker, say) was.

Computed from the Chrome events alone (``run``/``wait`` slices, ``lock`` holds, ``channel``
instants), so it works for any trace plait wrote, whole or partial. Times are in
microseconds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["summarize"]


def summarize(
    events: list[dict[str, Any]], channel_counts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``strands``, ``objects`` (waits per object), ``locks``, ``channels`` (put/get counts:
    ``channel_counts`` as the recorder counted them, else from ``channel`` instants),
    ``processes``."""
    names: dict[tuple[Any, Any], str] = {}
    run: dict[tuple[Any, Any], float] = defaultdict(float)
    wait: dict[tuple[Any, Any], float] = defaultdict(float)
    spans: dict[Any, list[float]] = {}
    objects: dict[str, dict[str, Any]] = {}
    holds: dict[tuple[Any, Any, Any], tuple[str, float]] = {}
    locks: dict[str, dict[str, Any]] = {}
    channels: dict[str, dict[str, Any]] = {}
    tasks: dict[Any, list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        ph = e.get("ph")
        pid, tid = e.get("pid"), e.get("tid")
        ts = float(e.get("ts", 0.0))
        if ph == "M" and e.get("name") == "thread_name":
            names[(pid, tid)] = str(e.get("args", {}).get("name", tid))
            continue
        if ph in ("X", "i", "b", "e", "C"):
            bounds = spans.setdefault(pid, [ts, ts])
            stop = ts + float(e.get("dur", 0.0))
            bounds[0] = min(bounds[0], ts)
            bounds[1] = max(bounds[1], stop)
        cat = e.get("cat")
        if ph == "X" and cat == "task":
            tasks[pid].append((ts, ts + float(e["dur"])))
        elif ph == "X" and cat == "run":
            run[(pid, tid)] += float(e["dur"])
        elif ph == "X" and cat == "wait":
            dur = float(e["dur"])
            wait[(pid, tid)] += dur
            label = str(e.get("args", {}).get("object", e.get("name")))
            row = objects.setdefault(label, {"object": label, "waits": 0, "waited_us": 0.0,
                                             "timeouts": 0, "cancelled": 0})  # fmt: skip
            row["waits"] += 1
            row["waited_us"] += dur
            outcome = e.get("args", {}).get("outcome")
            if outcome == "timeout":
                row["timeouts"] += 1
            elif outcome == "cancelled":
                row["cancelled"] += 1
        elif cat == "lock" and ph == "b":
            holds[(pid, tid, e.get("id"))] = (str(e.get("name", "hold"))[5:], ts)
        elif cat == "lock" and ph == "e":
            started = holds.pop((pid, tid, e.get("id")), None)
            if started is not None:
                label, since = started
                row = locks.setdefault(label, {"lock": label, "holds": 0, "held_us": 0.0})
                row["holds"] += 1
                row["held_us"] += ts - since
        elif cat == "channel" and ph == "i":
            label = str(e.get("args", {}).get("channel", "?"))
            row2 = channels.setdefault(label, {"channel": label, "puts": 0, "gets": 0})
            row2["puts" if e.get("name") == "put" else "gets"] += 1
    for label, row in locks.items():
        contended = objects.get(label)
        row["contended"] = contended["waits"] if contended else 0
        row["contended_wait_us"] = contended["waited_us"] if contended else 0.0
    strands = [
        {
            "pid": pid,
            "tid": tid,
            "strand": names.get((pid, tid), f"strand {tid}"),
            "running_us": round(run[(pid, tid)], 1),
            "waiting_us": round(wait[(pid, tid)], 1),
        }
        for pid, tid in sorted(set(run) | set(wait), key=lambda k: (str(k[0]), str(k[1])))
    ]
    # Pool utilisation: each worker's task time over the pool's busy window (the first
    # task's start to the last one's end, across workers); else run time over its span.
    window = [t for spans_ in tasks.values() for t in spans_]
    busy_from = min((a for a, _ in window), default=0.0)
    busy_to = max((b for _, b in window), default=0.0)
    processes = []
    for pid, (first, last) in sorted(spans.items(), key=lambda kv: str(kv[0])):
        running = sum(v for (p, _), v in run.items() if p == pid)
        done = tasks.get(pid, [])
        task_us = sum(b - a for a, b in done)
        if done:  # the time it ran any task (a coroutine worker runs several at once)
            share = _covered(done) / max(busy_to - busy_from, 1e-9)
        else:
            share = running / max(last - first, 1e-9)
        processes.append(
            {
                "pid": pid,
                "span_us": round(last - first, 1),
                "running_us": round(running, 1),
                "tasks": len(done),
                "task_us": round(task_us, 1),
                "utilisation": round(share, 3),
                "strands": sum(1 for (p, _) in names if p == pid),
            }
        )
    return {
        "strands": strands,
        "objects": sorted(objects.values(), key=lambda r: -r["waited_us"]),
        "locks": sorted(locks.values(), key=lambda r: -r["contended_wait_us"]),
        "channels": sorted(
            channels.values() if channel_counts is None else channel_counts,
            key=lambda r: str(r["channel"]),
        ),
        "processes": processes,
    }


def _covered(spans: list[tuple[float, float]]) -> float:
    """The length of the union of ``spans``."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total
