"""Helpers for the trace tests: read a written trace back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def tracks(data: dict[str, Any]) -> dict[tuple[int, int], str]:
    """(pid, tid) -> track name."""
    return {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in data["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


def events(data: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [e for e in data["traceEvents"] if all(e.get(k) == v for k, v in match.items())]
