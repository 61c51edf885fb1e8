"""Pool tests of CPython's suites that cannot apply to ``plait.Pool``, each with its reason.

Two kinds: tests that read CPython-private attributes of the executor or pool (``_processes``,
``_max_workers``, ``_mp_context``, ``_executor_manager_thread``, ``_broken``, ``_pool``,
``_state``, ...), and deliberate differences listed in the README section "Differences from
the standard library".
"""

_PRIVATE = "reads a CPython-private attribute of the executor"
_SCRIPT = (
    "runs a script that imports the executor by its class name from concurrent.futures "
    "(the adapter class is not there)"
)
_EAGER_PICKLE = (
    "difference: plait pickles arguments at submit(), so an unpicklable argument raises "
    "there, at the caller's line, not later from result()"
)
_NO_EXIT = (
    "difference: a task's SystemExit never ends the caller; the task fails with "
    "WorkerCrashed (exitcode = the exit code, __cause__ = the SystemExit)"
)
_NOT_BROKEN = (
    "difference: a failing task never breaks a plait pool (only that task fails and the "
    "worker is replaced); the test also reads the private _processes/_broken"
)

SKIPS: dict[str, str] = {
    # -- test._test_multiprocessing (3.11-3.13) --------------------------------------------
    "WithPlaitTestPool::test_make_pool": "reads a CPython-private attribute of the pool (_pool)",
    "WithPlaitTestPool::test_resource_warning": (
        "sets the CPython-private _state to fake a running pool (plait warns for a pool "
        "left running: tests/pool/test_pool_fidelity.py::test_a_pool_left_running_warns)"
    ),
    "WithPlaitTestPool::test_traceback": (
        "difference: the remote traceback is plait.RemoteTraceback, not "
        "multiprocessing.pool.RemoteTraceback (the test checks the exact type)"
    ),
    "WithPlaitTestPool::test_map_unplicklable": (
        "difference: an argument that will not pickle raises plait.SerializationError (a "
        "pickle.PicklingError naming the culprit and its path; the original error is its "
        "__cause__), not the __reduce__'s own RuntimeError"
    ),
    # -- test.test_concurrent_futures (3.13) -----------------------------------------------
    "PlaitProcessPoolExecutorTest::test_idle_process_reuse_one": _PRIVATE + " (_processes)",
    "PlaitProcessPoolExecutorTest::test_idle_process_reuse_multiple": _PRIVATE + " (_processes)",
    "PlaitProcessPoolExecutorTest::test_killed_child": _NOT_BROKEN,
    "PlaitProcessPoolExecutorTest::test_max_tasks_per_child": _PRIVATE + " (_processes)",
    "PlaitProcessPoolExecutorTest::test_max_tasks_per_child_defaults_to_spawn_context": (
        _PRIVATE + " (_mp_context)"
    ),
    "PlaitProcessPoolExecutorTest::test_max_workers_too_large": _PRIVATE + " (_max_workers)",
    "PlaitProcessPoolExecutorTest::test_saturation": _PRIVATE + " (_processes)",
    "PlaitProcessPoolExecutorTest::test_free_reference": (
        "difference: map(fn, iterable) with one iterable and no timeout is "
        "multiprocessing.Pool.map (it returns the list); Executor.map's lazy iterator is "
        "map(fn, *iterables) with several iterables or timeout=, or imap"
    ),
    "PlaitProcessPoolExecutorTest::test_traceback": (
        "difference: the remote traceback is plait.RemoteTraceback (it carries the worker's "
        "frames), not the private concurrent.futures.process._RemoteTraceback"
    ),
    "PlaitProcessPoolExecutorTest::test_python_finalization_error": (
        "difference: plait starts its threads in the constructor, so a failure to start "
        "one raises there (the pool is torn down), not from a later map()"
    ),
    "PlaitExecutorDeadlockTest::test_error_at_task_pickle": _EAGER_PICKLE,
    "PlaitExecutorDeadlockTest::test_shutdown_deadlock_pickle": (
        _PRIVATE + " (_executor_manager_thread); " + _EAGER_PICKLE
    ),
    "PlaitExecutorDeadlockTest::test_exit_during_func_exec_on_worker": _NO_EXIT,
    "PlaitExecutorDeadlockTest::test_exit_during_result_pickle_on_worker": _NO_EXIT,
    "PlaitProcessPoolShutdownTest::test_processes_terminate": _PRIVATE + " (_processes)",
    "PlaitProcessPoolShutdownTest::test_hang_gh83386": _SCRIPT,
    "PlaitProcessPoolShutdownTest::test_interpreter_shutdown": _SCRIPT,
    "PlaitProcessPoolShutdownTest::test_submit_after_interpreter_shutdown": _SCRIPT,
    "PlaitProcessPoolShutdownTest::test_run_after_interpreter_shutdown": _SCRIPT,
    "PlaitProcessPoolShutdownTest::test_hang_issue12364": _SCRIPT,
    "PlaitFailingInitializerMixin::test_initializer": (
        "difference: a failing initializer fails each task with the initializer's own "
        "error and keeps the pool usable (no BrokenExecutor); reads the private _broken"
    ),
}
