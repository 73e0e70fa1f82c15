"""Worker processes: N batch workers, each in its own interpreter, under one supervisor.

A worker in a thread beside the listener and the API shares their interpreter (and its lock);
a process of its own does not. Claiming is unchanged (``FOR UPDATE SKIP LOCKED`` with leases
on PostgreSQL), so processes on one machine and on several machines mix freely; on SQLite one
writer at a time still holds, so more than one process gains nothing there.

The supervisor restarts a worker that dies (its claimed batch comes back when the lease runs
out) and stops them all on SIGTERM or Ctrl-C, each finishing its batch.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from loguru import logger

from nlp_service.core.config import Settings

RESTART_DELAY_SECONDS = 1.0  # a worker that dies at once is not restarted in a tight loop
STOP_GRACE_SECONDS = 60.0


def _run_worker(settings: dict[str, Any], index: int, count: int) -> None:
    """One worker process: its own engine and pipeline, until SIGTERM."""
    from nlp_service.core.logging import configure_logging
    from nlp_service.server import make_worker
    from nlp_service.storage.db import make_engine

    current = Settings(**settings)
    if current.pipeline_mode == "full":
        import torch

        # Each process would take every core for its matrix products; N of them on the same
        # cores only get in each other's way. Share them out instead.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
    configure_logging(current.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine = make_engine(current.database_url)
    try:
        make_worker(current, engine).run_forever(stop, current.worker_poll_seconds)
    finally:
        engine.dispose()
        logger.info("worker process {} stopped", index)


class WorkerProcesses:
    """Start, watch and stop ``count`` worker processes."""

    def __init__(self, settings: Settings, count: int) -> None:
        if count < 1:
            raise ValueError("the number of worker processes must be at least 1")
        self.settings = settings
        self.count = count
        # spawn, not fork: the parent holds database connections and maybe a loaded model.
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess | None] = [None] * count
        self.restarts = 0

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_run_worker, args=(self.settings.model_dump(), index, self.count),
            name=f"radnlp-worker-{index}", daemon=False)
        process.start()
        self._processes[index] = process
        logger.info("worker process {} started (pid {})", index, process.pid)

    def start(self) -> None:
        for index in range(self.count):
            self._start(index)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.pid is not None]

    def supervise(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Restart any worker that exits until ``stop`` is set, then stop them all."""
        try:
            while not stop.wait(poll_seconds):
                for index, process in enumerate(self._processes):
                    if process is not None and not process.is_alive():
                        logger.warning("worker process {} exited with {}; restarting", index,
                                       process.exitcode)
                        self.restarts += 1
                        time.sleep(RESTART_DELAY_SECONDS)
                        self._start(index)
        finally:
            self.stop()

    def stop(self) -> None:
        for process in self._processes:
            if process is not None and process.is_alive():
                process.terminate()  # SIGTERM: the worker finishes its batch, then exits
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self._processes:
            if process is not None:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join()


def run_worker_processes(settings: Settings, count: int) -> None:
    """Run ``count`` worker processes in the foreground until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pool = WorkerProcesses(settings, count)
    pool.start()
    pool.supervise(stop)
