"""How plait scales past 2 cores: pools, a fan-in queue and a shared lock, peers in the same run.

    PYTHONPATH=src python3 bench/bench_scaling.py [--quick] [--out FILE] [--budget SECONDS]
                                                  [--cases pool,queue,lock]

Cases (each figure a median of a few repeats, after a warm-up round):

1. ``pool, CPU-bound``: a pure-Python task of ~15 ms (calibrated on this machine),
   ``TASKS_PER_WORKER`` per worker, ``map(..., chunksize=1)``; workers 1, 2, 4, 8, 16
   (capped at the cores); plait.Pool vs multiprocessing.Pool vs ProcessPoolExecutor.
   Reported: tasks/s, speedup over the same library at 1 worker, efficiency
   (speedup / workers).
2. ``pool, tiny tasks``: ``map(identity, range(200_000))`` with each library's default
   chunking, at workers = cores; plait.Pool vs multiprocessing.Pool.
3. ``queue fan-in``: P producer processes (1, 2, 4, 8, 15, capped at cores - 1 but at least
   2) put small ints into one bounded queue (maxsize 1000) that the parent drains;
   plait.Queue vs multiprocessing.Queue; messages/s in total. ``--put-gate`` adds
   plait.Queue with ``PLAIT_PUT_GATE=1`` (its C putters take turns through a gate word: off
   by default until a many-core run shows it helps).
4. ``lock contention``: P processes (1, 2, 4, 8, 16, capped at the cores) each do
   ``with lock: counter.value += 1`` on one shared counter (a ``RawValue``: plait has no
   Value yet); plait.Lock vs multiprocessing.Lock; acquisitions/s in total, and the final
   count is checked (a lost update is reported).

Every child process is started from multiprocessing's ``forkserver`` context (plait's
default start method), for plait and its peers alike. Queue and lock rounds are sized after
the warm-up round so that each takes about ``ROUND_S`` seconds, whatever the speed.

Never hangs: each case runs in its own Python subprocess under a timeout that also fits
the whole run's ``--budget``; a case that runs over is killed with all its descendants
(multiprocessing's resource tracker last, so that it unlinks its semaphores), the /dev/shm
names of plait's that its processes left are removed, and the case is recorded as failed.
Cases that the budget no longer fits are recorded as skipped.

Output: a table on stdout, and JSON at ``--out`` (default ``bench/results/scaling.json``)
in the shared harness's format (``results``: one row per figure, for ``bench/report.py``)
plus ``scaling``: every case's figures, samples and status, and ``machine``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
TASK_MS = 15.0
QUEUE_MAXSIZE = 1000
GATED = "plait.Queue (put gate)"  # --put-gate: plait.Queue with PLAIT_PUT_GATE=1
JOIN_S = 10.0  # how long a case waits for its children to leave
WAIT_S = 120.0  # the longest a child waits at a barrier before giving up

# -- task functions, imported by name in every worker (``import bench_scaling``) -----------


def cpu_task(n: int) -> int:
    """Pure-Python CPU work: ``n`` rounds of integer arithmetic (holds the GIL)."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def tiny(x: Any) -> Any:
    return x


def producer(q: Any, barrier: Any, ctl: Any) -> None:
    """Each round: wait for the parent, then put ``ctl[0]`` small ints; ``ctl[1]`` stops."""
    while True:
        barrier.wait(WAIT_S)
        if ctl[1]:
            return
        put = q.put
        for i in range(ctl[0]):
            put(i)


def locker(lock: Any, counter: Any, barrier: Any, ctl: Any) -> None:
    """Each round: wait for the parent, then ``ctl[0]`` locked increments; ``ctl[1]`` stops."""
    while True:
        barrier.wait(WAIT_S)
        if ctl[1]:
            return
        for _ in range(ctl[0]):
            with lock:
                counter.value += 1


# -- cases: each runs in its own subprocess ------------------------------------------------


def _ctx() -> Any:
    import multiprocessing

    return multiprocessing.get_context("forkserver")


def _make_pool(lib: str, workers: int) -> tuple[Any, Any]:
    """``(map(fn, items, chunksize) -> list, close())`` for one of the three pools."""
    if lib == "plait.Pool":
        from plait import Pool

        pool = Pool(workers)

        def close() -> None:
            pool.close()
            pool.join()

        return (lambda fn, xs, cs: pool.map(fn, xs, chunksize=cs)), close
    if lib == "multiprocessing.Pool":
        mp_pool = _ctx().Pool(workers)

        def close_mp() -> None:
            mp_pool.close()
            mp_pool.join()

        return (lambda fn, xs, cs: mp_pool.map(fn, xs, chunksize=cs)), close_mp
    if lib == "ProcessPoolExecutor":
        from concurrent.futures import ProcessPoolExecutor

        ex = ProcessPoolExecutor(workers, mp_context=_ctx())

        def close_ex() -> None:
            ex.shutdown(wait=True)

        return (lambda fn, xs, cs: list(ex.map(fn, xs, chunksize=cs or 1))), close_ex
    raise ValueError(lib)


def case_pool_cpu(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    workers, n, per_worker = spec["workers"], spec["iters"], spec["tasks_per_worker"]
    items = [n] * (workers * per_worker)
    expected = cpu_task(n)
    pool_map, close = _make_pool(spec["lib"], workers)
    try:
        pool_map(t.cpu_task, [n // 10] * (workers * 2), 1)  # every worker up and warm
        rates = []
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            out = pool_map(t.cpu_task, items, 1)
            rates.append(len(items) / (time.perf_counter() - t0))
            if len(out) != len(items) or out[0] != expected or out[-1] != expected:
                raise AssertionError("wrong results")
    finally:
        close()
    return {"samples": rates, "tasks": len(items)}


def case_pool_tiny(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    data = list(range(spec["n"]))
    t_start = time.perf_counter()
    pool_map, close = _make_pool(spec["lib"], spec["workers"])
    try:
        pool_map(t.tiny, data[: len(data) // 10], None)
        t_warm = time.perf_counter()
        rates = []
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            out = pool_map(t.tiny, data, None)
            rates.append(len(data) / (time.perf_counter() - t0))
            if len(out) != len(data) or out[-1] != data[-1]:
                raise AssertionError("wrong results")
        t_end = time.perf_counter()
    finally:
        close()
    phases = {
        "start_warmup": t_warm - t_start,
        "timed": t_end - t_warm,
        "close": time.perf_counter() - t_end,
    }
    return {"samples": rates, "phases_s": phases}


def _rounds(
    spec: dict[str, Any], procs: list[Any], barrier: Any, ctl: Any, body: Any
) -> tuple[list[float], list[int]]:
    """Start ``procs``; run a warm-up round and ``repeat`` timed rounds of ``body(total)``
    (which returns once the round's ``total`` operations are done), sized so each timed
    round takes about ``round_s``; then stop the children. Returns (rates, totals)."""
    p = len(procs)
    for proc in procs:
        proc.start()
    try:
        rates: list[float] = []
        totals: list[int] = []
        per = max(1, spec["first_total"] // p)
        for r in range(spec["repeat"] + 1):
            ctl[0] = per
            barrier.wait(WAIT_S)
            t0 = time.perf_counter()
            body(per * p)
            dt = time.perf_counter() - t0
            if r == 0:  # the warm-up round sizes the timed ones
                want = per * p / dt * spec["round_s"]
                total = int(min(max(want, spec["first_total"]), spec["max_total"]))
                per = max(1, total // p)
            else:
                rates.append(per * p / dt)
                totals.append(per * p)
        ctl[1] = 1
        barrier.wait(WAIT_S)
        for proc in procs:
            proc.join(JOIN_S)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_S)
    bad = [proc.exitcode for proc in procs if proc.exitcode != 0]
    if bad:
        raise RuntimeError(f"children exited with {bad}")
    return rates, totals


def case_queue(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    ctx = _ctx()
    p = spec["procs"]
    if spec["lib"].startswith("plait.Queue"):
        from plait import Queue

        q: Any = Queue(QUEUE_MAXSIZE)
    else:
        q = ctx.Queue(QUEUE_MAXSIZE)
    barrier = ctx.Barrier(p + 1)
    ctl = ctx.RawArray("q", 2)
    procs = [ctx.Process(target=t.producer, args=(q, barrier, ctl)) for _ in range(p)]
    get = q.get

    def drain(total: int) -> None:
        for _ in range(total):
            get()

    try:
        rates, totals = _rounds(spec, procs, barrier, ctl, drain)
    finally:
        if spec["lib"] == "multiprocessing.Queue":
            q.close()
            q.join_thread()
        elif hasattr(q, "close"):
            q.close()
    return {"samples": rates, "messages_per_round": totals}


def case_lock(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    ctx = _ctx()
    p = spec["procs"]
    if spec["lib"] == "plait.Lock":
        from plait import Lock

        lock: Any = Lock()
    else:
        lock = ctx.Lock()
    counter = ctx.RawValue("q", 0)  # multiprocessing.Value(lock=False): the lock guards it
    barrier = ctx.Barrier(p + 1)
    ctl = ctx.RawArray("q", 2)
    procs = [ctx.Process(target=t.locker, args=(lock, counter, barrier, ctl)) for _ in range(p)]
    done = [0]

    def wait_round(total: int) -> None:
        # The children count; the parent waits until they have (polling 1 ms, so that it
        # takes no core from them).
        done[0] += total
        deadline = time.monotonic() + WAIT_S
        while counter.value < done[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"counter {counter.value} of {done[0]}")
            time.sleep(0.001)

    rates, totals = _rounds(spec, procs, barrier, ctl, wait_round)
    return {
        "samples": rates,
        "acquisitions_per_round": totals,
        "counter": counter.value,
        "expected": done[0],
        "lost_updates": done[0] - counter.value,
    }


def case_info(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    import plait

    info: dict[str, Any] = {"plait": getattr(plait, "__version__", "?")}
    try:
        from plait._channels import _queue

        info["speedups"] = getattr(_queue, "SPEEDUPS", None)
    except ImportError:
        info["speedups"] = None
    info["gil"] = bool(getattr(sys, "_is_gil_enabled", lambda: True)())
    try:
        from _harness import machine_info

        info["harness_machine"] = machine_info()
    except Exception as exc:  # the harness is optional
        info["harness_machine"] = f"unavailable: {exc!r}"
    return info


def case_hang(spec: dict[str, Any], t: Any) -> dict[str, Any]:
    """For checking the watchdog: shared objects in flight, a child, then no end."""
    from plait import Lock, Queue

    ctx = _ctx()
    q: Any = Queue(10)
    lock = Lock()
    barrier = ctx.Barrier(2)
    ctl = ctx.RawArray("q", 2)
    ctl[0] = 10**9
    child = ctx.Process(target=t.locker, args=(lock, ctx.RawValue("q", 0), barrier, ctl))
    child.start()
    barrier.wait(WAIT_S)
    feeder = ctx.Process(target=t.producer, args=(q, barrier, ctl))
    feeder.start()
    barrier.wait(WAIT_S)
    q.get(timeout=WAIT_S)
    pool = _ctx().Pool(2)
    pool.apply(t.tiny, (1,))
    time.sleep(10**6)
    return {}


CASES = {
    "hang": case_hang,
    "info": case_info,
    "pool_cpu": case_pool_cpu,
    "pool_tiny": case_pool_tiny,
    "queue": case_queue,
    "lock": case_lock,
}


def run_case_here(spec: dict[str, Any], result_path: str) -> None:
    """The subprocess side: run one case and write its figures (or its error) as JSON."""
    sys.path.insert(0, str(BENCH_DIR))
    import bench_scaling  # the task functions, importable by name in any worker

    try:
        out = {"status": "ok", **CASES[spec["kind"]](spec, bench_scaling)}
    except BaseException as exc:  # reported to the driver, never raised past it
        import traceback

        out = {"status": "error", "error": "".join(traceback.format_exception(exc))[-2000:]}
    Path(result_path).write_text(json.dumps(out))


# -- the driver ----------------------------------------------------------------------------


def _session(sid: int) -> list[Any]:
    """Every live process of session ``sid`` (a case and all it started, orphans too)."""
    import psutil

    members = []
    for pid in psutil.pids():
        try:
            if pid != sid and os.getsid(pid) == sid:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            pass
    return members


def _wait_gone(procs: list[Any], timeout: float) -> list[Any]:
    """Those of ``procs`` still alive after up to ``timeout`` seconds (polling every 10 ms:
    psutil.wait_procs backs off to 2 s sleeps, which would cost seconds per case)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                pass
        if not alive or time.monotonic() >= deadline:
            return alive
        procs = alive
        time.sleep(0.01)


def _kill(procs: list[Any]) -> int:
    import psutil

    n = 0
    for p in procs:
        try:
            p.kill()
            n += 1
        except psutil.Error:
            pass
    _wait_gone(procs, 5.0)
    return n


def _end_session(proc: subprocess.Popen[bytes], grace: float) -> int:
    """End a case and everything it started: the case itself at once if it still runs,
    the rest after ``grace`` seconds to leave by themselves; multiprocessing's resource
    tracker last, so that it sees its users gone and unlinks what they left. Returns how
    many processes had to be killed."""
    try:
        import psutil
    except ImportError:  # then the whole session at once
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        return 0

    killed = 0
    if proc.poll() is None:
        proc.kill()
        killed += 1
    proc.wait()
    trackers: list[Any] = []
    others: list[Any] = []
    for member in _session(proc.pid):
        try:
            cmd = " ".join(member.cmdline())
        except psutil.Error:
            cmd = ""
        (trackers if "resource_tracker" in cmd else others).append(member)
    killed += _kill(_wait_gone(others, grace))
    killed += _kill(_wait_gone(trackers, 5.0))
    return killed


_OWNER_TAGGED = re.compile(r"(?:sem\.)?plait_[a-z]+_(\d+)_(\d+)_\d+_[0-9a-f]+_")
_PID_TAGGED = re.compile(r"(?:sem\.)?plait_(?:[a-z]+_)+(\d+)_[0-9a-f]+_")


def _sweep_shm(case_pid: int) -> list[str]:
    """Remove the /dev/shm names of plait's that a finished case left: owner-tagged names
    of its process family (each case is a family: the driver starts it without
    ``PLAIT_SHM_FAMILY``) whose owner is gone, and pid-tagged ones (named semaphores of
    shared locks) that the case process itself created. Nobody else's are touched."""
    removed: list[str] = []
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return removed
    for name in names:
        m = _OWNER_TAGGED.match(name)
        if m is not None:
            ours = int(m.group(1)) == case_pid and not os.path.exists(f"/proc/{m.group(2)}")
        else:
            m = _PID_TAGGED.match(name)
            ours = m is not None and int(m.group(1)) == case_pid
        if ours:
            try:
                os.unlink(os.path.join("/dev/shm", name))
                removed.append(name)
            except OSError:
                pass
    return removed


class Driver:
    def __init__(self, budget: float, cap: float) -> None:
        self.start = time.monotonic()
        self.budget = budget
        self.cap = cap
        self.env = dict(os.environ)
        self.env.pop("PLAIT_SHM_FAMILY", None)  # each case is a family of its own
        # The caller's PYTHONPATH before src/: a plait installed elsewhere (a wheel built
        # for a lent machine's Python) wins over the checkout's, whose builds are this one's.
        paths = [str(BENCH_DIR)]
        if self.env.get("PYTHONPATH"):
            paths.append(self.env["PYTHONPATH"])
        paths.append(str(BENCH_DIR.parent / "src"))
        self.env["PYTHONPATH"] = os.pathsep.join(paths)
        self.leaked_shm: list[str] = []

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def run(self, spec: dict[str, Any], cap: float | None = None) -> dict[str, Any]:
        timeout = min(cap or self.cap, self.left() - 3.0)
        if timeout < 4.0:
            return {"status": "skipped", "error": "out of time budget"}
        fd, path = tempfile.mkstemp(prefix="plait_bench_scaling_", suffix=".json")
        os.close(fd)
        env = {**self.env, **spec.get("env", {})}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--run-case", json.dumps(spec)]
        cmd += ["--result", path]
        t0 = time.monotonic()
        status = "timeout"
        # The case's output goes to a file, not a pipe: a pipe would stay open (and a read
        # of it hang) for as long as any process the case started still lives.
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait(timeout=timeout)
                status = "done"
            except subprocess.TimeoutExpired:
                pass
            finally:  # also on KeyboardInterrupt: nothing the case started outlives it
                stragglers = _end_session(proc, grace=3.0 if status == "done" else 0.0)
                self.leaked_shm += _sweep_shm(proc.pid)
            log.seek(0)
            tail = log.read().decode(errors="replace")[-1500:]
        try:
            text = Path(path).read_text()
            result = json.loads(text) if text else {}
        except (OSError, ValueError):
            result = {}
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
        if stragglers:
            result["stragglers_killed"] = stragglers
        if status == "timeout":
            result = {"status": "timeout", "error": f"killed after {timeout:.0f} s\n{tail}"}
        elif not result:
            result = {"status": "error", "error": f"exit code {proc.returncode}\n{tail}"}
        elif proc.returncode != 0 and result.get("status") == "ok":
            result["warning"] = f"case exited with {proc.returncode}\n{tail}"
        result["wall_s"] = round(time.monotonic() - t0, 2)
        if result.get("samples"):
            result["median"] = statistics.median(result["samples"])
        return result


def calibrate(ms: float) -> int:
    """Iterations of :func:`cpu_task` that take about ``ms`` milliseconds here."""
    n = 20_000
    while True:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            cpu_task(n)
            times.append(time.perf_counter() - t0)
        best = min(times)
        if best > 0.005:
            return max(1000, int(n * ms / 1000 / best))
        n *= 4


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}{unit}"
    return f"{x:.3g}{unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "scaling.json")
    parser.add_argument("--budget", type=float, help="seconds for the whole run")
    parser.add_argument(
        "--cases", default="pool,queue,lock", help="which of pool, queue, lock (comma-separated)"
    )
    parser.add_argument(
        "--put-gate",
        action="store_true",
        help="queue fan-in: plait.Queue also with PLAIT_PUT_GATE=1 (the C putters' gate)",
    )
    parser.add_argument("--run-case", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_case:
        run_case_here(json.loads(args.run_case), args.result)
        return 0

    quick = args.quick
    began = time.monotonic()
    try:
        cores = len(os.sched_getaffinity(0))  # what this process may use, not the host's
    except AttributeError:
        cores = os.cpu_count() or 1
    budget = args.budget or (50.0 if quick else 260.0)
    driver = Driver(budget, cap=20.0 if quick else 40.0)
    repeat = 2 if quick else 3
    round_s = 0.15 if quick else 0.4
    iters = calibrate(TASK_MS)
    per_worker = 8 if quick else 64
    wanted = set(args.cases.split(","))
    workers_list = [w for w in (1, 2, 4, 8, 16) if w <= cores and "pool" in wanted]
    queue_procs = [p for p in (1, 2, 4, 8, 15) if p <= max(2, cores - 1) and "queue" in wanted]
    lock_procs = [p for p in (1, 2, 4, 8, 16) if p <= max(2, cores) and "lock" in wanted]
    n_tiny = 50_000 if quick else 200_000
    first_total = 5000 if quick else 20_000  # the warm-up round of queue and lock cases
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None

    print(f"bench_scaling: {cores} cores ({physical} physical), budget {budget:.0f} s", flush=True)
    info = driver.run({"kind": "info"}, cap=30.0)
    print(f"  plait {info.get('plait')}, C speedups: {info.get('speedups')}", flush=True)
    config = {
        "task_ms": TASK_MS,
        "cpu_task_iters": iters,
        "tasks_per_worker": per_worker,
        "repeat": repeat,
        "round_s": round_s,
        "tiny_tasks": n_tiny,
        "queue_maxsize": QUEUE_MAXSIZE,
        "start_method": "forkserver (all libraries)",
        "budget_s": budget,
    }
    scaling: dict[str, list[dict[str, Any]]] = {
        "pool_cpu": [],
        "pool_tiny": [],
        "queue_fanin": [],
        "lock": [],
    }

    def show(section: str, row: dict[str, Any], unit: str) -> None:
        where = ", ".join(
            f"{k}={row[k]}" for k in ("workers", "producers", "processes") if k in row
        )
        status = row["status"]
        figure = _fmt(row.get("median"), " " + unit) if status == "ok" else status.upper()
        print(f"  {section:<12} {row['lib']:<22} {where:<14} {figure:>20}", flush=True)

    pool_libs = ["plait.Pool", "multiprocessing.Pool", "ProcessPoolExecutor"]
    print(f"\n1. pool, CPU-bound ({TASK_MS:.0f} ms tasks, {per_worker} per worker)", flush=True)
    for w in workers_list:
        for lib in pool_libs:
            spec = {
                "kind": "pool_cpu",
                "lib": lib,
                "workers": w,
                "iters": iters,
                "tasks_per_worker": per_worker,
                "repeat": repeat,
            }
            row = {"lib": lib, "workers": w, **driver.run(spec)}
            scaling["pool_cpu"].append(row)
            show("pool_cpu", row, "tasks/s")
    print(f"\n2. pool, {n_tiny:,} tiny tasks at {cores} workers", flush=True)
    for lib in pool_libs[:2] if "pool" in wanted else []:
        spec = {
            "kind": "pool_tiny",
            "lib": lib,
            "workers": cores,
            "n": n_tiny,
            "repeat": 2 * repeat + 1,
        }
        row = {"lib": lib, "workers": cores, **driver.run(spec)}
        scaling["pool_tiny"].append(row)
        show("pool_tiny", row, "tasks/s")
    print(f"\n3. queue fan-in (maxsize {QUEUE_MAXSIZE}), producers -> parent", flush=True)
    queue_libs = ["plait.Queue", "multiprocessing.Queue"]
    if args.put_gate:
        queue_libs.insert(1, GATED)
    for p in queue_procs:
        for lib in queue_libs:
            spec = {
                "kind": "queue",
                "lib": lib,
                "env": {"PLAIT_PUT_GATE": "1"} if lib == GATED else {},
                "procs": p,
                "repeat": repeat,
                "round_s": round_s,
                "first_total": first_total,
                "max_total": 2_000_000,
            }
            row = {"lib": lib, "producers": p, **driver.run(spec)}
            scaling["queue_fanin"].append(row)
            show("queue", row, "msgs/s")
    print("\n4. lock contention (with lock: counter += 1)", flush=True)
    for p in lock_procs:
        for lib in ("plait.Lock", "multiprocessing.Lock"):
            spec = {
                "kind": "lock",
                "lib": lib,
                "procs": p,
                "repeat": repeat,
                "round_s": round_s,
                "first_total": first_total,
                "max_total": 5_000_000,
            }
            row = {"lib": lib, "processes": p, **driver.run(spec)}
            scaling["lock"].append(row)
            show("lock", row, "acq/s")

    results = derive(scaling)
    runtime = time.monotonic() - began
    machine = {
        "cpu_count": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _harness_cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "plait": info.get("plait", "?"),
        "plait_speedups": info.get("speedups"),
        "gil": info.get("gil"),
        "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cores": cores,
    }
    failures = [
        {"section": s, **{k: v for k, v in r.items() if k not in ("samples",)}}
        for s, rows in scaling.items()
        for r in rows
        if r["status"] != "ok"
    ]
    notes = [
        "Every child starts from the forkserver context, for plait and its peers alike.",
        "speedup: tasks/s over the same library's at 1 worker; efficiency: speedup / workers.",
    ]
    if any(r.get("lost_updates") for r in scaling["lock"]):
        notes.append("LOST UPDATES under a lock: see scaling.lock[*].lost_updates")
    payload = {
        "topic": "scaling",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine,
        "config": config,
        "runtime_s": round(runtime, 1),
        "notes": notes,
        "results": results,
        "scaling": scaling,
        "failures": failures,
        "leaked_shm_removed": driver.leaked_shm,
        "info": info,
    }
    print_tables(scaling, results)
    print(f"\n{len(failures)} case(s) failed or skipped; runtime {runtime:.1f} s", flush=True)
    for f in failures:
        print(f"  {f['section']} {f['lib']}: {f['status']}: {str(f.get('error', ''))[-300:]}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    except OSError as exc:
        print(f"could not write {args.out}: {exc}; the JSON follows")
        print(json.dumps(payload))
        return 1
    return 0


def _harness_cpu_model() -> str:
    sys.path.insert(0, str(BENCH_DIR))
    from _harness import _cpu_model

    return _cpu_model()


def derive(scaling: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Speedups and efficiencies, and harness-style rows (``bench/report.py`` reads them)."""
    rows: list[dict[str, Any]] = []

    def add(case: str, impl: str, r: dict[str, Any], unit: str, baseline: str) -> None:
        if r["status"] == "ok" and r.get("median") is not None:
            rows.append(
                {
                    "case": case,
                    "impl": impl,
                    "value": r["median"],
                    "unit": unit,
                    "better": "higher",
                    "baseline": baseline,
                    "ratio": None,
                    "target": None,
                    "target_ratio": None,
                    "target_value": None,
                    "meets": None,
                    "note": r.get("note", ""),
                    "samples": r.get("samples", []),
                }
            )

    one = {
        r["lib"]: r.get("median")
        for r in scaling["pool_cpu"]
        if r["workers"] == 1 and r["status"] == "ok"
    }
    for r in scaling["pool_cpu"]:
        base = one.get(r["lib"])
        if r["status"] == "ok" and base:
            r["speedup"] = r["median"] / base
            r["efficiency"] = r["speedup"] / r["workers"]
            r["note"] = f"speedup {r['speedup']:.2f}, efficiency {r['efficiency']:.2f}"
        add(
            f"CPU-bound 15 ms tasks, {r['workers']} workers",
            r["lib"],
            r,
            "tasks/s",
            "multiprocessing.Pool",
        )
    for r in scaling["pool_tiny"]:
        add(
            f"map tiny tasks, {r['workers']} workers",
            r["lib"],
            r,
            "tasks/s",
            "multiprocessing.Pool",
        )
    for r in scaling["queue_fanin"]:
        add(
            f"queue fan-in, {r['producers']} producers",
            r["lib"],
            r,
            "msgs/s",
            "multiprocessing.Queue",
        )
    for r in scaling["lock"]:
        if r.get("lost_updates"):
            r["note"] = f"{r['lost_updates']} LOST UPDATES"
        add(
            f"lock contention, {r['processes']} processes",
            r["lib"],
            r,
            "acq/s",
            "multiprocessing.Lock",
        )
    by_key = {(r["case"], r["impl"]): r for r in rows}
    for r in rows:
        base = by_key.get((r["case"], r["baseline"]))
        if base and base["value"]:
            r["ratio"] = r["value"] / base["value"]
        if r["impl"] == "plait.Queue" and r["case"].startswith("queue fan-in"):
            # issue 12: >= 2x multiprocessing.Queue at every producer count
            r["target"] = ">= 2x multiprocessing.Queue"
            r["target_ratio"] = 2.0
            r["meets"] = r["ratio"] is not None and r["ratio"] >= 2.0
    return rows


def print_tables(scaling: dict[str, list[dict[str, Any]]], results: list[dict[str, Any]]) -> None:
    ratio = {(r["case"], r["impl"]): r["ratio"] for r in results}
    print("\n== pool, CPU-bound: tasks/s (speedup vs 1 worker, efficiency) ==")
    libs = list(dict.fromkeys(r["lib"] for r in scaling["pool_cpu"]))
    print(f"{'workers':>8}  " + "  ".join(f"{lib:>34}" for lib in libs))
    for w in sorted({r["workers"] for r in scaling["pool_cpu"]}):
        cells = []
        for lib in libs:
            r = next(
                (x for x in scaling["pool_cpu"] if x["workers"] == w and x["lib"] == lib), None
            )
            if r is None or r["status"] != "ok":
                cells.append(f"{(r or {}).get('status', '-'):>34}")
            else:
                cells.append(
                    f"{_fmt(r['median']):>10} ({r.get('speedup', 0):5.2f}x, "
                    f"eff {r.get('efficiency', 0):4.2f})".rjust(34)
                )
        print(f"{w:>8}  " + "  ".join(cells))

    def simple(title: str, section: str, key: str, case: str) -> None:
        print(f"\n== {title} ==")
        libs = list(dict.fromkeys(r["lib"] for r in scaling[section]))
        print(f"{key:>10}  " + "  ".join(f"{lib:>30}" for lib in libs))
        for p in sorted({r[key] for r in scaling[section]}):
            cells = []
            for lib in libs:
                r = next((x for x in scaling[section] if x[key] == p and x["lib"] == lib), None)
                if r is None or r["status"] != "ok":
                    cells.append(f"{(r or {}).get('status', '-'):>30}")
                    continue
                rt = ratio.get((case.format(p), lib))
                extra = f" ({rt:.2f}x)" if rt is not None else ""
                if r.get("lost_updates"):
                    extra += " LOST"
                cells.append(f"{_fmt(r['median']) + extra:>30}")
            print(f"{p:>10}  " + "  ".join(cells))

    simple(
        "pool, tiny tasks: tasks/s (ratio vs multiprocessing.Pool)",
        "pool_tiny",
        "workers",
        "map tiny tasks, {} workers",
    )
    simple(
        "queue fan-in: msgs/s total (ratio vs multiprocessing.Queue)",
        "queue_fanin",
        "producers",
        "queue fan-in, {} producers",
    )
    simple(
        "lock contention: acquisitions/s total (ratio vs multiprocessing.Lock)",
        "lock",
        "processes",
        "lock contention, {} processes",
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
