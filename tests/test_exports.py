"""The public API is exactly ``plait.__all__``, and exported objects show as ``plait.X``."""

from __future__ import annotations
import __future__

import inspect
import multiprocessing
import pickle
import queue
import threading
import types

import pytest

import plait


def _public_names() -> set[str]:
    """Public names of the package, less submodules and ``from __future__`` features."""
    return {
        name
        for name in dir(plait)
        if not name.startswith("_")
        and not isinstance(getattr(plait, name), types.ModuleType | __future__._Feature)
    }


def test_all_has_no_duplicates() -> None:
    assert len(plait.__all__) == len(set(plait.__all__))


def test_every_name_in_all_exists() -> None:
    missing = [name for name in plait.__all__ if not hasattr(plait, name)]
    assert missing == []


def test_every_public_name_is_in_all() -> None:
    extra = sorted(_public_names() - set(plait.__all__))
    assert extra == [], f"public names missing from plait.__all__ (add or rename with _): {extra}"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from plait import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(plait.__all__)


@pytest.mark.parametrize(
    "name",
    sorted(n for n in plait.__all__ if inspect.isclass(getattr(plait, n, None))),
)
def test_exported_class_shows_as_plait(name: str) -> None:
    """STYLE.md: tracebacks, pickles and reprs show ``plait.Lock``, not ``plait._sync.Lock``.

    Re-exported stdlib helpers (``plait.local`` is ``threading.local``) keep their module.
    """
    obj = getattr(plait, name)
    if not obj.__module__.startswith("plait"):
        return
    assert obj.__module__ == "plait", f"{name}.__module__ is {obj.__module__!r}"
    # An alias (plait.X = plait.Y) must point at a class exported under its own name.
    assert getattr(plait, obj.__qualname__, None) is obj, f"{name} shows as {obj.__qualname__}"


@pytest.mark.parametrize(
    "name",
    sorted(n for n in plait.__all__ if inspect.isfunction(getattr(plait, n, None))),
)
def test_exported_function_shows_as_plait(name: str) -> None:
    obj = getattr(plait, name)
    if not obj.__module__.startswith("plait"):
        return
    assert obj.__module__ == "plait", f"{name}.__module__ is {obj.__module__!r}"


def test_version_is_a_string() -> None:
    assert isinstance(plait.__version__, str)
    assert plait.__version__.count(".") >= 1


@pytest.mark.parametrize("module", [threading, multiprocessing, queue], ids=lambda m: m.__name__)
def test_every_stdlib_name_is_on_plait(module: types.ModuleType) -> None:
    """``import plait as threading`` (or multiprocessing, or queue) finds every name the
    running Python's module exports."""
    missing = [name for name in module.__all__ if not hasattr(plait, name)]
    assert missing == []
    not_in_all = sorted(set(module.__all__) - set(plait.__all__))
    assert not_in_all == []


def test_stdlib_exception_names_are_the_stdlib_classes() -> None:
    """``except threading.ThreadError`` and ``except plait.ThreadError`` catch the same."""
    assert plait.ThreadError is threading.ThreadError
    assert plait.ExceptHookArgs is threading.ExceptHookArgs
    assert plait.ProcessError is multiprocessing.ProcessError
    assert plait.AuthenticationError is multiprocessing.AuthenticationError
    if hasattr(queue, "ShutDown"):  # plait's is a queue.ShutDown (and a plait.ClosedError)
        assert issubclass(plait.ShutDown, queue.ShutDown)
    assert issubclass(plait.ShutDown, plait.ClosedError)


def test_excepthook_reads_and_writes_threadings_hook() -> None:
    seen: list[type[BaseException]] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        seen.append(args.exc_type)

    old = threading.excepthook
    try:
        plait.excepthook = hook
        assert threading.excepthook is hook
        assert plait.excepthook is hook

        def fail() -> None:
            raise KeyError("x")

        t = plait.Thread(target=fail)
        t.start()
        t.join(10)
        assert seen == [KeyError]
    finally:
        threading.excepthook = old
    assert plait.excepthook is old


def test_the_plait_module_pickles_by_name() -> None:
    """A ``__main__`` function that uses ``plait.`` crosses to a process: the module (whose
    class plait swaps for ``plait.excepthook``) pickles as a reference, like any module."""
    import cloudpickle

    assert pickle.loads(pickle.dumps(plait)) is plait
    assert cloudpickle.loads(cloudpickle.dumps(plait)) is plait
    namespace: dict[str, object] = {"plait": plait, "__name__": "__main__"}
    exec("def uses_plait():\n    return plait.Lock", namespace)
    fn = cloudpickle.loads(cloudpickle.dumps(namespace["uses_plait"]))
    assert fn() is plait.Lock
