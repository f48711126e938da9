"""The solver pool: routing jobs in worker processes, driven from asyncio (see ``dispatcher``)."""

from wasteml_server.routing.pool.dispatcher import SolverPool
from wasteml_server.routing.pool.jobs import JobHandle, ProgressEvent

__all__ = ["JobHandle", "ProgressEvent", "SolverPool"]
