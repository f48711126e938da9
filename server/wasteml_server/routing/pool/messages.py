"""The messages between the pool and its worker processes (pickled over a duplex pipe).

Parent -> worker: :class:`SolveTask`, or ``None`` to exit. Worker -> parent: :class:`Ready`
once the engines are imported, then per task :class:`Started`, any number of :class:`Improved`,
and one :class:`Done` or :class:`Failed`. Domain errors travel as themselves (every
``WastemlError`` pickles with its fields); anything else travels as its traceback text.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """The task raised: a domain error as itself, anything else as its traceback."""

    task_id: str
    error: WastemlError | None
    traceback: str = ""


FromWorker = Ready | Started | Improved | Done | Failed
