"""The solver worker process: imports the engines once, then solves one task at a time."""

from __future__ import annotations

import math
import multiprocessing.connection
import signal
import time
import traceback
from typing import Any

from wasteml_server.core.errors import WastemlError
from wasteml_server.routing.engine import Budget, Progress
from wasteml_server.routing.options import EngineName
from wasteml_server.routing.pool.messages import Done, Failed, Improved, Ready, SolveTask, Started

#: Least interval between two progress messages of one task, seconds (the best one is kept).
PROGRESS_INTERVAL_S = 0.1


class _ProgressSender:
    """Forwards engine progress over the pipe, at most one message per PROGRESS_INTERVAL_S."""

    def __init__(self, conn: multiprocessing.connection.Connection, task_id: str) -> None:
        self._conn = conn
        self._task_id = task_id
        self._last = -math.inf
        self._pending: Progress | None = None

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._conn.send(Improved(self._task_id, p))
            self._last = now
            self._pending = None
        else:
            self._pending = p

    def flush(self) -> None:
        """Send the last improvement held back by the rate limit."""
        if self._pending is not None:
            p, self._pending = self._pending, None
            self._conn.send(Improved(self._task_id, p))


def worker_main(conn: multiprocessing.connection.Connection, cancel: Any) -> None:
    """Entry point of a worker process: solve tasks received on ``conn`` until None or EOF.

    Args:
        conn: the worker's end of the duplex pipe.
        cancel: a ``multiprocessing.Event``; set, the running search stops at its next check.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    from wasteml_server.routing.portfolio import make_engine

    engines = {name: make_engine(name) for name in (EngineName.ORTOOLS, EngineName.PYVRP)}
    conn.send(Ready())
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        assert isinstance(task, SolveTask)
        conn.send(Started(task.task_id))
        on_progress = _ProgressSender(conn, task.task_id)
        try:
            budget = Budget(task.options.limit_s, task.deadline, cancel)
            solution = engines[task.engine].solve(task.problem, budget, on_progress, task.options)
            on_progress.flush()
            conn.send(Done(task.task_id, solution))
        except WastemlError as err:
            conn.send(Failed(task.task_id, err))
        except Exception as err:  # noqa: BLE001 - reported to the parent, never swallowed
            conn.send(Failed(task.task_id, None, "".join(traceback.format_exception(err))))
