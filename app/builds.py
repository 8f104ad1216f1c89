"""Builds run in worker processes, so the server's event loop and threads never wait on
the model, and a build can be stopped.

The pool holds one worker process per core (MMU_VIZ_BUILD_WORKERS), each driven by a
thread of the server that hands it one job at a time and waits on its pipe without holding
the GIL. A job is refused up front when the pool already has max_in_flight jobs running or
queued (Busy, with the seconds until a slot is expected to free). A running job is stopped
by killing its worker, which is then replaced:
 - when the worker's CPU time passes the per-build limit: the worker sets RLIMIT_CPU
   before each job, so the kernel sends it SIGXCPU (and the parent kills it anyway at
   twice the limit of wall time, if the machine is too busy for the CPU time to add up);
 - when the job is cancelled (everyone who asked for it has gone).
A worker whose memory grew past recycle_rss after a job is replaced too, so one large
build does not leave a large process behind. After a built run, the worker sends the run's
index scan (app/run_parts.py), worked out while the server loads the run (Task.index).
Workers are forked from a clean fork server (multiprocessing "forkserver"), never from the
threaded server; they get the server's sys.path, so they import the same (compiled or
source) model.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.build_jobs import BuildJob
from app.run_codec import encode_run
from app.run_parts import scan_part
from mmu_model import MmuModelError

__all__ = ["BuildPool", "BuildStopped", "Busy", "Cancelled", "model_in_use"]

log = logging.getLogger(__name__)

_POLL_S = 0.05


class Busy(Exception):
    """Every build slot is taken: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BuildStopped(Exception):
    """A build ran past a limit (CPU time, memory) or its worker died."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Cancelled(Exception):
    """Everyone who asked for the build went away before it finished."""


def model_in_use() -> dict[str, Any]:
    """Which model this process imported: the mypyc-compiled build or the source tree."""
    import mmu_model.mmu

    path = mmu_model.mmu.__file__ or ""
    compiled = not path.endswith(".py")
    return {"kind": "compiled" if compiled else "source",
            "package": os.path.dirname(mmu_model.__file__ or "")}


# ------------------------------------------------------------------------------ worker side
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker_main(conn: Connection, cpu_limit_s: float, max_memory: int) -> None:
    """A build worker: build each job it is sent and send back the encoded run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    if max_memory:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    conn.send(("hello", os.getpid(), model_in_use()))
    while True:
        job = conn.recv()
        if job is None:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_limit_s)
        resource.setrlimit(resource.RLIMIT_CPU,
                           (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
        run = None
        data = b""
        try:
            run = job()
            data = encode_run(run)
            reply: tuple[Any, ...] = ("ok",)
        except MmuModelError as exc:
            reply = ("model-error", type(exc), str(exc), vars(exc))
        except MemoryError:
            reply = ("stopped", "the build ran out of the memory a build may use")
        except Exception as exc:  # a bug in the model: report it, keep serving
            reply = ("stopped", f"the build failed: {type(exc).__name__}: {exc}")
        try:
            conn.send((*reply, _rss_bytes()))
            if reply[0] == "ok":
                # The run's bytes as they are, not pickled: a 100k-page run is 33 MB, and
                # pickling it cost a copy here (20 ms, with the server waiting) and there.
                conn.send_bytes(data)
                data = b""
                # The server loads the run meanwhile; then the run's index comes too.
                conn.send(("part", _index_part(run), _rss_bytes()))
        finally:
            resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
            del run


def _index_part(run: Any) -> bytes | None:
    """The run's index scan, encoded (app/run_parts.py); None if it has none (a headless
    run) or the scan failed (the server then scans the run itself)."""
    if run.timeline is None:
        return None
    try:
        return scan_part(run)
    except MemoryError:
        return None
    except Exception:
        log.exception("scanning a built run failed")
        return None


def _rebuild_model_error(cls: type[MmuModelError], text: str,
                         attrs: dict[str, Any]) -> MmuModelError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, text)
    exc.__dict__.update(attrs)
    return exc


# ------------------------------------------------------------------------------ server side
@dataclass(eq=False)
class Task:
    job: BuildJob
    estimated_s: float
    future: Future[bytes] = field(default_factory=Future)
    # The run's index scan (app/run_parts.py), which the worker sends after the run:
    # None when it has none, or the worker could not send it.
    index: Future[bytes | None] = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float | None = None

    def cancel(self) -> None:
        self.cancelled.set()


class _Worker:
    def __init__(self, ctx: Any, cpu_limit_s: float, max_memory: int) -> None:
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.process: BaseProcess = ctx.Process(
            target=_worker_main, args=(child, cpu_limit_s, max_memory), daemon=True,
            name="mmu-build-worker")
        self.process.start()
        child.close()
        hello = self.conn.recv()
        self.pid: int = hello[1]
        self.model: dict[str, Any] = hello[2]

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.join(timeout=2)
        except OSError:
            pass
        self.kill()


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["app.builds"])
    return ctx


class BuildPool:
    def __init__(self, workers: int, max_in_flight: int, cpu_limit_s: float,
                 max_memory: int = 0, recycle_rss: int = 256 << 20,
                 wall_limit_s: float | None = None) -> None:
        self.workers = max(1, workers)
        self.max_in_flight = max(self.workers, max_in_flight)
        self.cpu_limit_s = cpu_limit_s
        # A build that waits for the CPU (a loaded machine) or on nothing at all is stopped
        # at this wall time; the CPU-time limit is the one a build normally meets.
        self.wall_limit_s = 2 * cpu_limit_s + 5 if wall_limit_s is None else wall_limit_s
        self.max_memory = max_memory
        self.recycle_rss = recycle_rss
        self._ctx = _context()
        self._cond = threading.Condition()
        self._queue: deque[Task] = deque()
        self._running: set[Task] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.model: dict[str, Any] | None = None
        self.counts = {"built": 0, "failed": 0, "stopped": 0, "cancelled": 0,
                       "refused_busy": 0, "workers_started": 0}

    # -- submitting ---------------------------------------------------------------------
    def submit(self, job: BuildJob, estimated_s: float) -> Task:
        """Queue a job; Busy if max_in_flight jobs are running or queued already."""
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down", 5)
            if len(self._queue) + len(self._running) >= self.max_in_flight:
                self.counts["refused_busy"] += 1
                raise Busy(f"{self.max_in_flight} builds are running or waiting already; "
                           "this server builds at most that many at once",
                           self._retry_after())
            task = Task(job, estimated_s)
            self._queue.append(task)
            self._start_threads()
            self._cond.notify()
            return task

    def cancel(self, task: Task) -> None:
        with self._cond:
            task.cancel()
            if task in self._queue:
                self._queue.remove(task)
                self.counts["cancelled"] += 1
                task.index.set_result(None)
                task.future.set_exception(Cancelled())

    def in_flight(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._running)

    def _retry_after(self) -> int:
        now = time.monotonic()
        remaining = [max(t.estimated_s - (now - (t.started or now)), 0.0)
                     for t in self._running]
        waiting = sum(t.estimated_s for t in self._queue) / self.workers
        return max(1, math.ceil(min(remaining, default=0.0) + waiting))

    # -- running ------------------------------------------------------------------------
    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._slot, name=f"build-slot-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def start(self) -> None:
        """Start the worker processes now rather than at the first build; after close(),
        open again (an app's lifespan may run more than once: test clients, schemathesis)."""
        with self._cond:
            self._closed = False
            self._start_threads()

    def _slot(self) -> None:
        worker: _Worker | None = None
        try:
            while True:
                if worker is None:
                    worker = self._try_new_worker()  # before the job: it starts sooner
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    task = self._queue.popleft()
                    task.started = time.monotonic()
                    self._running.add(task)
                try:
                    worker = worker or self._try_new_worker()
                    if worker is None:
                        self._finish(task, "stopped",
                                     BuildStopped("no build worker could be started"))
                        continue
                    keep = self._run(worker, task)
                finally:
                    with self._cond:
                        self._running.discard(task)
                if not keep:
                    worker.kill()
                    worker = None
        finally:
            if worker is not None:
                worker.stop()

    def _try_new_worker(self) -> _Worker | None:
        try:
            return self._new_worker()
        except Exception:
            log.exception("could not start a build worker")
            return None

    def _new_worker(self) -> _Worker:
        worker = _Worker(self._ctx, self.cpu_limit_s, self.max_memory)
        with self._cond:
            self.counts["workers_started"] += 1
            self.model = worker.model
        return worker

    def _run(self, worker: _Worker, task: Task) -> bool:
        """Run one task on `worker`; False when the worker must be replaced."""
        wall_limit = self.wall_limit_s
        deadline = time.monotonic() + wall_limit
        try:
            worker.conn.send(task.job)
            while not worker.conn.poll(_POLL_S):
                if task.cancelled.is_set():
                    self._finish(task, "cancelled", Cancelled())
                    return False
                if self._closed:
                    self._finish(task, "cancelled", Cancelled())
                    return False
                if time.monotonic() > deadline:
                    self._finish(task, "stopped", BuildStopped(
                        f"the build took more than {wall_limit:.0f} s of wall time and was "
                        "stopped"))
                    return False
            reply = worker.conn.recv()
            if reply[0] == "ok":  # the run's bytes follow (_worker_main)
                reply = (*reply[:-1], worker.conn.recv_bytes(), reply[-1])
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            if code == -signal.SIGXCPU:
                why = (f"the build used more than {self.cpu_limit_s:.0f} s of CPU time and "
                       "was stopped")
            else:
                why = f"the build worker died (exit code {code})"
            self._finish(task, "stopped", BuildStopped(why))
            return False
        kind, *rest, rss = reply
        if kind == "ok":
            # The index comes while the run's callbacks (loading it, laying it out) run
            # here: another thread receives it, so it is not kept waiting behind them.
            keep: list[bool] = []
            receiver = threading.Thread(
                target=lambda: keep.append(self._receive_index(worker, task, deadline)),
                name=f"{threading.current_thread().name}-index", daemon=True)
            receiver.start()
            try:
                self._finish(task, "built", None, rest[0])
            finally:
                receiver.join()
            return keep == [True]
        if kind == "model-error":
            self._finish(task, "failed", _rebuild_model_error(*rest))
        else:
            self._finish(task, "stopped", BuildStopped(rest[0]))
            return False
        return bool(rss < self.recycle_rss)

    def _receive_index(self, worker: _Worker, task: Task, deadline: float) -> bool:
        """The index the worker sends after a built run (None if it does not come before
        the build's wall-time deadline); False when the worker must be replaced."""
        part: bytes | None = None
        try:
            while not worker.conn.poll(_POLL_S):
                if self._closed or time.monotonic() > deadline:
                    return False
            kind, data, rss = worker.conn.recv()
            if kind != "part":
                return False
            part = data
            return bool(rss < self.recycle_rss)
        except (EOFError, OSError):  # e.g. the scan ran past the CPU-time limit
            return False
        except Exception:
            log.exception("receiving the index of %s failed", task.job.describe())
            return False
        finally:
            task.index.set_result(part)  # whatever happened: nobody waits in vain

    def _finish(self, task: Task, outcome: str, error: BaseException | None,
                data: bytes | None = None) -> None:
        with self._cond:
            self.counts[outcome] += 1
        if error is not None:
            if outcome == "stopped":
                log.warning("build %s: %s", task.job.describe(), error)
            task.index.set_result(None)
            task.future.set_exception(error)
        else:
            assert data is not None
            task.future.set_result(data)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for task in self._queue:
                task.index.set_result(None)
                task.future.set_exception(Cancelled())
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

