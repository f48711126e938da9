"""The solver worker process: imports the engines once, then solves one task at a time.

**Memory bound:** with ``memory_limit_mib`` > 0 the worker limits its own address space
(``resource.setrlimit(RLIMIT_AS)``) before it imports anything. An allocation past it fails:
in Python and in PyVRP (pybind11 turns ``std::bad_alloc`` into ``MemoryError``) the task fails
with ``ResourceExhaustedError`` ("solver worker memory limit N MiB exceeded") and the worker
exits so that the pool starts a fresh one; OR-Tools does not catch ``std::bad_alloc`` and the
process aborts, which the pool recognises from the worker's stderr (``std::bad_alloc``) and
reports the same way. A task that cannot even be received (unpickled) exits with
:data:`MEMORY_EXIT_CODE`.

**stderr:** given a pipe, the worker writes its stderr there (the pool logs it and keeps the
tail to tell why a worker died).
"""

from __future__ import annotations

import math
import multiprocessing.connection
import os
import resource
import signal
import time
import traceback
from typing import Any

from wasteml_server.core.errors import ResourceExhaustedError, WastemlError
from wasteml_server.routing.engine import Budget, Progress
from wasteml_server.routing.options import EngineName
from wasteml_server.routing.pool.messages import Done, Failed, Improved, Ready, Started, recv_task

#: Least interval between two progress messages of one task, seconds (the best one is kept).
PROGRESS_INTERVAL_S = 0.1

#: Exit status of a worker that ran out of its memory limit outside a task's solve.
MEMORY_EXIT_CODE = 75


def memory_exceeded_message(limit_mib: int, detail: str) -> str:
    """The failure reason of a task whose worker ran out of memory (its limit, or the machine's
    when ``limit_mib`` is 0)."""
    if limit_mib <= 0:
        return f"solver worker ran out of memory ({detail}); the worker was replaced"
    return f"solver worker memory limit {limit_mib} MiB exceeded ({detail}); the worker was replaced"


def limit_memory(limit_mib: int) -> None:
    """Limit this process's address space to ``limit_mib`` MiB (0: leave it unlimited)."""
    if limit_mib > 0:
        limit = limit_mib * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


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


def worker_main(conn: multiprocessing.connection.Connection, cancel: Any, memory_limit_mib: int = 0,
                stderr: multiprocessing.connection.Connection | None = None) -> None:
    """Entry point of a worker process: solve tasks received on ``conn`` until None or EOF.

    Args:
        conn: the worker's end of the duplex pipe.
        cancel: a ``multiprocessing.Event``; set, the running search stops at its next check.
        memory_limit_mib: address-space limit of this process, MiB (0: none).
        stderr: where to send this process's stderr (the write end of a pipe), or None.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    if stderr is not None:
        os.dup2(stderr.fileno(), 2)
        stderr.close()
    limit_memory(memory_limit_mib)
    from wasteml_server.routing.portfolio import make_engine

    engines = {name: make_engine(name) for name in (EngineName.ORTOOLS, EngineName.PYVRP)}
    conn.send(Ready())
    while True:
        try:
            task = recv_task(conn)
        except (EOFError, OSError):
            return
        except MemoryError:
            os.write(2, b"MemoryError: out of memory receiving a task\n")
            os._exit(MEMORY_EXIT_CODE)
        if task is None:
            return
        conn.send(Started(task.task_id))
        on_progress = _ProgressSender(conn, task.task_id)
        out_of_memory = False
        try:
            budget = Budget(task.options.limit_s, task.deadline, cancel)
            solution = engines[task.engine].solve(task.problem, budget, on_progress, task.options)
            on_progress.flush()
            conn.send(Done(task.task_id, solution))
        except MemoryError:
            out_of_memory = True  # answered below, once the traceback (and the engine's data) is gone
        except WastemlError as err:
            conn.send(Failed(task.task_id, err))
        except Exception as err:  # noqa: BLE001 - reported to the parent, never swallowed
            conn.send(Failed(task.task_id, None, "".join(traceback.format_exception(err))))
        if out_of_memory:
            task_id = task.task_id
            del task, on_progress
            conn.send(Failed(task_id, ResourceExhaustedError(memory_exceeded_message(
                memory_limit_mib, f"task {task_id} ran out of memory")), retiring=True))
            return  # a fresh worker replaces this one (its heap may be fragmented)
