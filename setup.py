"""Build plait's optional C accelerator (``plait._speedups``, the queue's hot paths;
``plait._fastlock``, the lock's; ``plait._core._greenpark``, green strands' switch step).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no compiler, another Python implementation, a free-threaded build) plait installs and runs
in pure Python, only slower; ``PLAIT_NO_SPEEDUPS=1`` at run time also turns it off.
"""

from __future__ import annotations

import platform
import sysconfig

from setuptools import Extension, setup

_wanted = platform.python_implementation() == "CPython" and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
)

setup(
    ext_modules=[
        Extension("plait._speedups", ["src/plait/_speedups.c"], optional=True),
        # the lock's uncontended paths, current_strand() and async_sleep(0) (fallback: the
        # Python methods, see plait/_sync/_lock.py)
        Extension(
            "plait._fastlock",
            ["src/plait/_fastlock.c"],
            depends=["src/plait/_ipc/_robust_api.h"],
            optional=True,
        ),
        # the robust process-shared mutex of shared queues (fallback: the same calls
        # through ctypes, see plait/_ipc/robust.py)
        Extension(
            "plait._ipc._robust",
            ["src/plait/_ipc/_robust.c"],
            depends=["src/plait/_ipc/_robust_api.h"],
            optional=True,
        ),
        # the shared log's published word with acquire/release order, for weakly ordered
        # CPUs (fallback on x86-64: a memoryview; elsewhere plait.shared refuses to run)
        Extension("plait.shared._ordered", ["src/plait/shared/_ordered.c"], optional=True),
        # green strands' switch step: the hub and its wake-ups (fallback: the Python classes,
        # see plait/_core/green.py); greenlet is called through its Python API, no headers
        Extension("plait._core._greenpark", ["src/plait/_core/_greenpark.c"], optional=True),
    ]
    if _wanted
    else [],
)
