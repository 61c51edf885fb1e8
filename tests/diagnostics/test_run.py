"""``plait run SCRIPT``: an unmodified program, plait's primitives, deadlocks reported."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import plait

pytestmark = pytest.mark.timeout(60)

PROGRAMS = Path(__file__).parent / "programs"
SEEDS = Path(__file__).parent.parent / "seeds"


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
        env={"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin"},
    )


def _plait_run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, "-m", "plait.cli", "run", str(script), *args, cwd=script.parent)


def _python(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, str(script), *args, cwd=script.parent)


def test_the_seeds_deadlock_ends_within_a_second_naming_threads_locks_and_lines() -> None:
    done = _plait_run(PROGRAMS / "seed_deadlock.py")
    ended = time.time()
    assert done.returncode == 3, done.stderr
    started = float(re.search(r"start-+([0-9.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    assert ended - started < 1.0, f"the run went on {ended - started:.2f} s after it began"
    report = done.stderr[done.stderr.index("plait.DeadlockError") :]
    threads = set(re.findall(r"thread '(Thread-\d+)'", report))
    assert len(threads) == 2, report
    assert "plait.Lock 'mutexA'" in report and "plait.Lock 'mutexB'" in report
    # where each waits (fun2's and fun1's second acquire) and where each took its lock
    assert "seed_deadlock.py:31 (fun2)" in report and "seed_deadlock.py:22 (fun1)" in report
    assert "taken at" in report and "seed_deadlock.py:20 (fun1)" in report
    assert "seed_deadlock.py:28 (fun2)" in report
    assert "plait run: deadlock" in done.stderr


def _fragments(text: str) -> collections.Counter[str]:
    """What a program printed, as a multiset of words, numbers and signs: threads' prints
    interleave piece by piece, so only the pieces are compared, with times and dates
    replaced (they differ from run to run)."""
    text = re.sub(r"[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \d{4}", "§", text)
    # a time.time() is one "#"; two printed by two threads can touch ("1764...1231764...99"):
    # a run of digits and points that holds a timestamp counts one "#" per point
    text = re.sub(
        r"\d[\d.]*\d",
        lambda m: " # " * m.group().count(".") if re.search(r"\d{9}", m.group()) else m.group(),
        text,
    )
    return collections.Counter(re.findall(r"[^\W\d_]+|\d+|[^\s\w]", text))


SEED_THREAD_PROGRAMS = sorted(
    p.stem for p in SEEDS.glob("*.py") if "import plait as threading" in p.read_text()
)


@pytest.mark.parametrize("name", SEED_THREAD_PROGRAMS)
def test_the_seeds_thread_programs_print_the_same_under_plait_run(
    name: str, tmp_path: Path
) -> None:
    source = (SEEDS / f"{name}.py").read_text(encoding="utf-8")
    script = tmp_path / f"{name}.py"
    script.write_text(source.replace("import plait as threading", "import threading"))
    # Threads' prints race each other (one print is several writes: lines can interleave
    # mid-line) and a daemon's lines race the main thread's exit, under python as under
    # plait; so a program gets three tries to print what python printed in one of its own.
    tries = 3
    seen: list[collections.Counter[str]] = []
    for _ in range(tries):
        python, plait_run = _python(script), _plait_run(script)
        assert python.returncode == plait_run.returncode == 0, plait_run.stderr
        assert plait_run.stderr == python.stderr
        seen.append(_fragments(python.stdout))
        if _fragments(plait_run.stdout) in seen:
            return
    assert _fragments(plait_run.stdout) == seen[-1]


def test_inside_the_run_threading_is_plait_and_outside_it_is_not(tmp_path: Path) -> None:
    script = tmp_path / "which.py"
    script.write_text(
        "import threading, queue, sys\n"
        "print(type(threading.Lock()).__module__, type(queue.Queue()).__module__)\n"
        "print(sys.argv[1:])\n"
    )
    done = _plait_run(script, "a", "--b")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["plait plait", "['a', '--b']"]
    import queue
    import threading

    assert not isinstance(threading.Lock(), plait.Lock)
    assert not isinstance(queue.Queue(), plait.Queue)


def test_a_missing_file_is_pythons_error_and_status(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    python, plait_run = _python(missing), _plait_run(missing)
    assert plait_run.returncode == python.returncode == 2
    assert "can't open file" in plait_run.stderr and "[Errno 2]" in plait_run.stderr
    assert str(missing) in plait_run.stderr


def test_a_syntax_error_is_the_scripts_own(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("x = 1\ndef f(:\n    pass\n")
    python, plait_run = _python(script), _plait_run(script)
    assert plait_run.returncode == python.returncode == 1
    assert "SyntaxError" in plait_run.stderr
    assert python.stderr.splitlines()[-4:] == plait_run.stderr.splitlines()[-4:]


def test_an_exit_status_and_an_exception_are_the_scripts_own(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint('out')\nsys.exit(7)\n")
    done = _plait_run(script)
    assert (done.returncode, done.stdout) == (7, "out\n")
    raising = tmp_path / "raises.py"
    raising.write_text("def f():\n    raise ValueError('bad value')\nf()\n")
    python, plait_run = _python(raising), _plait_run(raising)
    assert plait_run.returncode == python.returncode == 1
    assert plait_run.stderr == python.stderr  # the traceback starts at the script, as python's


def _characters(text: str) -> collections.Counter[str]:
    """What processes printed, as a multiset of characters (times replaced): unbuffered
    prints of several processes interleave at any character boundary."""
    text = re.sub(r"[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \d{4}", "§", text)
    return collections.Counter(text)


SEED_PROCESS_PROGRAMS = sorted(
    p.stem for p in SEEDS.glob("*.py") if "from plait import Process" in p.read_text()
)


@pytest.mark.parametrize("name", SEED_PROCESS_PROGRAMS)
def test_the_seeds_process_programs_print_the_same_under_plait_run(
    name: str, tmp_path: Path
) -> None:
    source = (SEEDS / f"{name}.py").read_text(encoding="utf-8")
    script = tmp_path / f"{name}.py"
    script.write_text(
        source.replace("from plait import Process", "from multiprocessing import Process")
    )
    python, plait_run = _python(script), _plait_run(script)
    assert python.returncode == plait_run.returncode == 0, plait_run.stderr
    assert plait_run.stderr == python.stderr
    assert _characters(plait_run.stdout) == _characters(python.stdout)


@pytest.mark.parametrize("name", ["mp_queue", "mp_lock", "asyncio_prims"])
def test_multiprocessing_and_asyncio_programs_print_the_same_under_plait_run(name: str) -> None:
    script = PROGRAMS / f"{name}.py"
    python, plait_run = _python(script), _plait_run(script)
    assert python.returncode == plait_run.returncode == 0, plait_run.stderr
    assert plait_run.stderr == python.stderr
    assert _characters(plait_run.stdout) == _characters(python.stdout)


def test_inside_the_run_multiprocessing_and_asyncio_are_plait(tmp_path: Path) -> None:
    script = tmp_path / "which.py"
    script.write_text(
        "import asyncio, multiprocessing, plait\n"
        "made = [multiprocessing.Lock(), multiprocessing.RLock(), multiprocessing.Semaphore(),\n"
        "        multiprocessing.Event(), multiprocessing.Condition(), multiprocessing.Queue(),\n"
        "        asyncio.Lock(), asyncio.Event(), asyncio.Semaphore(), asyncio.Condition(),\n"
        "        asyncio.Queue()]\n"
        "print(all(type(x).__module__.startswith('plait') for x in made))\n"
        "print(multiprocessing.Process is plait.Process)\n"
    )
    done = _plait_run(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["True", "True"]
    import asyncio
    import multiprocessing

    assert not isinstance(multiprocessing.Lock(), plait.Lock)
    assert not isinstance(asyncio.Lock(), plait.Lock)
    assert multiprocessing.Process is not plait.Process


def test_an_asyncio_deadlock_under_plait_run_is_reported(tmp_path: Path) -> None:
    script = tmp_path / "alocks.py"
    script.write_text(
        "import asyncio\n"
        "async def main():\n"
        "    a, b = asyncio.Lock(), asyncio.Lock()\n"
        "    both = asyncio.Event()\n"
        "    async def one():\n"
        "        async with a:\n"
        "            await both.wait()\n"
        "            async with b:\n"
        "                pass\n"
        "    async def two():\n"
        "        async with b:\n"
        "            both.set()\n"
        "            await asyncio.sleep(0.05)\n"
        "            async with a:\n"
        "                pass\n"
        "    await asyncio.gather(one(), two())\n"
        "asyncio.run(main())\n"
    )
    done = _plait_run(script)
    assert done.returncode == 3, (done.stdout, done.stderr)
    report = done.stderr[done.stderr.index("plait.DeadlockError") :]
    assert "Lock 'a'" in report and "Lock 'b'" in report
    assert "alocks.py:8" in report and "alocks.py:14" in report
