"""A timeline of a plait program: every strand, wait, lock and channel, across processes.

``with plait.trace("out.json"):`` records (:mod:`~plait.trace.session`,
:mod:`~plait.trace.recorder`); the result is Chrome trace event JSON
(:mod:`~plait.trace.export`) with a summary table (:mod:`~plait.trace.summary`), and
``plait trace --html`` turns it into one offline page (:mod:`~plait.trace.html`).
"""

from __future__ import annotations

from plait.trace.session import TraceOutputError, trace, trace_span

__all__ = ["TraceOutputError", "trace", "trace_span"]
