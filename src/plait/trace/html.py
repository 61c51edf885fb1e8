"""One self-contained HTML page for a trace: no network, no CDN, a few KB of our own JS.

The page carries the trace's Chrome events and summary as inline JSON and draws one track
per strand (grouped by process) on canvases: ``run`` slices in grey, waits coloured by the
object waited on (a legend names them), instants as ticks. Wheel zooms around the pointer,
dragging pans, a click on a slice shows what it was. Below: the summary tables (time
running, waiting per object, lock contention, channels, per-process utilisation). A
partial trace says so at the top.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any

__all__ = ["render_html", "write_html"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _asset(name: str) -> str:
    """The viewer's own CSS or JS, shipped beside this module."""
    with open(os.path.join(_HERE, name), encoding="utf-8") as f:
        return f.read()


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>@@TITLE@@</title><style>@@CSS@@</style></head>
<body>
<header><h1>@@TITLE@@</h1><div id="status">loading...</div></header>
<div id="partial" hidden>This trace is partial: the recording was cut short (a crash, a kill
or a truncated file); what was recorded up to then is shown.</div>
<div id="bar"><button id="zin">zoom in</button><button id="zout">zoom out</button>
<button id="reset">reset</button> <span id="range"></span>
 &mdash; wheel: zoom, drag: pan, click: details</div>
<div id="timeline"></div>
<div id="info"></div>
<div id="legend"></div>
<section><h2>Strands: time running and waiting</h2><div id="s-strands"></div>
<h2>Waiting per object</h2><div id="s-objects"></div>
<h2>Lock contention</h2><div id="s-locks"></div>
<h2>Channels</h2><div id="s-channels"></div>
<h2>Processes (pool workers among them): utilisation</h2><div id="s-processes"></div></section>
<script type="application/json" id="trace-data">@@DATA@@</script>
<script>@@JS@@</script>
</body></html>
"""


def render_html(data: dict[str, Any], title: str = "plait trace") -> str:
    """The page for ``data`` (a Chrome trace as :func:`plait.trace.export.load_trace`
    returns it)."""
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = _PAGE.replace("@@TITLE@@", html.escape(title)).replace("@@CSS@@", _asset("viewer.css"))
    return page.replace("@@JS@@", _asset("viewer.js")).replace(
        "@@DATA@@", payload
    )  # data last: it is free text


def write_html(data: dict[str, Any], path: str, title: str | None = None) -> None:
    """Write the page for ``data`` to ``path`` (atomically)."""
    page = render_html(data, title or f"plait trace: {os.path.basename(path)}")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)
