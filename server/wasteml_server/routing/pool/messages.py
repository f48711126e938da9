"""The messages between the pool and its worker processes (pickled over a duplex pipe).

Parent -> worker: :class:`SolveTask`, or ``None`` to exit, by :func:`send_task` /
:func:`recv_task`. Worker -> parent: :class:`Ready` once the engines are imported, then per
task :class:`Started`, any number of :class:`Improved`, and one :class:`Done` or
:class:`Failed`. Domain errors travel as themselves (every ``WastemlError`` pickles with its
fields); anything else travels as its traceback text.

A task carries its problem's matrices (two int64 L x L arrays, 64 MB at the largest legal
size). ``Connection.send`` would pickle them in band, copying 64 MB while holding the GIL
(measured: the event loop stalled 55 ms); :func:`send_task` pickles with protocol 5 and sends
the arrays' buffers out of band straight from their memory (the pipe writes release the GIL).
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from multiprocessing.connection import Connection

from wasteml_server.core.errors import WastemlError
from wasteml_server.routing.engine import Progress
from wasteml_server.routing.options import EngineName, SolveOptions
from wasteml_server.routing.problem import Problem
from wasteml_server.routing.solution import Solution


@dataclass(frozen=True)
class SolveTask:
    """Solve ``problem`` with one engine.

    Attributes:
        task_id: ``"<job id>/<engine>"``.
        problem: the problem.
        options: the limited solve options.
        engine: ORTOOLS or PYVRP.
        deadline: absolute ``time.time()`` by which the search must stop, or None.
    """

    task_id: str
    problem: Problem
    options: SolveOptions
    engine: EngineName
    deadline: float | None


@dataclass(frozen=True)
class Ready:
    """The worker imported the engines and waits for tasks."""


@dataclass(frozen=True)
class Started:
    """The worker began the task (its clock runs from here)."""

    task_id: str


@dataclass(frozen=True)
class Improved:
    """A better solution during the search (rate-limited by the worker)."""

    task_id: str
    progress: Progress


@dataclass(frozen=True)
class Done:
    """The task's answer."""

    task_id: str
    solution: Solution


@dataclass(frozen=True)
class Failed:
    """The task raised: a domain error as itself, anything else as its traceback.

    ``retiring``: the worker exits after this message (it ran out of memory) and takes no
    further task; the pool replaces it.
    """

    task_id: str
    error: WastemlError | None
    traceback: str = ""
    retiring: bool = False


FromWorker = Ready | Started | Improved | Done | Failed


def send_task(conn: Connection, task: SolveTask | None) -> None:
    """Send a task (or None: exit) with its large buffers out of band (module docstring).

    Blocking: the parent calls it in a thread.
    """
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(task, protocol=5, buffer_callback=buffers.append)
    conn.send_bytes(struct.pack("!I", len(buffers)) + payload)
    for buffer in buffers:
        conn.send_bytes(buffer.raw())


def recv_task(conn: Connection) -> SolveTask | None:
    """Receive what :func:`send_task` sent.

    Raises:
        EOFError, OSError: the pipe closed.
        MemoryError: the task does not fit the worker's memory.
    """
    head = conn.recv_bytes()
    (count,) = struct.unpack("!I", head[:4])
    buffers = [conn.recv_bytes() for _ in range(count)]
    task = pickle.loads(memoryview(head)[4:], buffers=buffers)
    assert task is None or isinstance(task, SolveTask)
    return task
