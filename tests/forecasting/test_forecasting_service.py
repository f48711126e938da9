"""ForecastingService behind its ports, no Triton: a fake model server that runs the committed
repository's exported ``fill_level`` model in-process, and a fake audit sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wasteml_testing import REPO_ROOT

from wasteml_server.core.calls import call_scope
from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from wasteml_server.core.inference import ModelVersionState
from wasteml_server.forecasting.fill_level import BinReadings
from wasteml_server.forecasting.inference import OnnxRuntimeInfer
from wasteml_server.forecasting.service import ForecastingService

REPOSITORY = REPO_ROOT / "model_repository"
DATA = REPO_ROOT.parent / "shared" / "data"
DAY = 86_400.0


@dataclass
class FakeServer:
    """The InferenceServer port: version states the test sets, inference by ONNX Runtime."""

    states: list[ModelVersionState]
    served_version: str | None = None
    drop_rows: bool = False
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    _runner: OnnxRuntimeInfer | None = None

    async def infer_versioned(self, model, inputs, outputs, *, version="", timeout_s=None):
        (x,) = inputs.values()
        self.calls.append((model, version, len(x)))
        if self._runner is None:
            self._runner = OnnxRuntimeInfer(REPOSITORY / model / "1" / "model.onnx")
        y = self._runner(x)
        if self.drop_rows:
            y = y[:-1]
        return {outputs[0]: y.reshape(-1, 1)}, self.served_version or version

    async def repository_index(self, timeout_s=None):
        return list(self.states)

    async def model_config(self, name, version="", timeout_s=None) -> dict[str, Any]:
        return {"max_batch_size": 4}

    async def is_ready(self, timeout_s=None) -> bool:
        return True


@dataclass
class FakeAudit:
    """The AuditSink port: keeps every entry."""

    entries: list[dict] = field(default_factory=list)

    def record(self, **entry) -> bool:
        self.entries.append(entry)
        return True


def _ready(*versions: str, state: str = "READY") -> list[ModelVersionState]:
    return [ModelVersionState("fill_level", v, state, "") for v in versions]


def _bins(n: int = 6) -> list[BinReadings]:
    t0 = 1_622_437_200.0  # 2021-05-31 05:00 UTC
    return [BinReadings(f"skip-{i}", np.array([t0 - 3 * DAY, t0 - DAY]), np.array([0.2, 0.35 + 0.05 * i]),
                        t0 + DAY, None, 0.12) for i in range(n)]


@pytest.fixture
def exported() -> Path:
    """The committed repository with the exported fill_level version 1 (``make models``)."""
    if not (REPOSITORY / "fill_level" / "1" / "model.onnx").is_file():
        pytest.fail("model_repository/fill_level/1 is not exported; run `make models`")
    return REPOSITORY


async def _service(server: FakeServer, audit: FakeAudit | None = None) -> ForecastingService:
    return ForecastingService(server, REPOSITORY, DATA, audit)  # type: ignore[arg-type]


async def test_fill_predictions_name_the_version_that_served(exported) -> None:
    """Bins are sent in chunks of the served max_batch_size; the reply names fill_level v1."""
    server = FakeServer(_ready("1"))
    service = await _service(server)
    preds, model = await service.predict_fill_level(_bins(6), 0.8)
    assert model == ModelRef("fill_level", 1)
    assert [c[2] for c in server.calls] == [4, 2] and {c[1] for c in server.calls} == {"1"}
    assert all(0.0 <= p.lower <= p.fill_fraction <= p.upper <= 1.0 for p in preds)
    assert [p.bin_id for p in preds] == [f"skip-{i}" for i in range(6)]


async def test_the_audit_names_the_call_it_served(exported) -> None:
    """A prediction made for PlanDay is audited as PlanDay, with the model version and a hash."""
    audit = FakeAudit()
    service = await _service(FakeServer(_ready("1")), audit)
    with call_scope("/wasteml.v1.CollectionPlanner/PlanDay"):
        await service.predict_fill_level(_bins(2), 0.8)
    (entry,) = audit.entries
    assert entry["rpc_method"] == "/wasteml.v1.CollectionPlanner/PlanDay"
    assert entry["model_name"] == "fill_level" and entry["model_version"] == 1
    assert len(entry["request_hash"]) == 64 and entry["output"]["n_bins"] == 2


@pytest.mark.parametrize(("states", "wanted", "error"), [
    (_ready("1", state="UNAVAILABLE"), None, FailedPreconditionError),  # trained, not loaded
    (_ready("1", state="LOADING"), None, UnavailableError),  # retry shortly
    (_ready("1"), 7, NotFoundError),  # no such version anywhere
])
async def test_version_states_give_the_documented_errors(exported, states, wanted, error) -> None:
    """Not loaded -> FAILED_PRECONDITION, loading -> UNAVAILABLE, unknown pinned -> NOT_FOUND."""
    service = await _service(FakeServer(states))
    with pytest.raises(error):
        await service.predict_fill_level(_bins(1), 0.8, model=ModelRef("", wanted))


async def test_a_reply_from_another_version_or_of_the_wrong_size_is_refused(exported) -> None:
    """A reply served by another version, or with a row missing, never reaches the caller."""
    for server in (FakeServer(_ready("1"), served_version="2"), FakeServer(_ready("1"), drop_rows=True)):
        service = await _service(server)
        with pytest.raises(UnavailableError):
            await service.predict_fill_level(_bins(3), 0.8)


async def test_bad_arguments_name_their_field(exported) -> None:
    """An unknown model name, too many contributions or no bins are named by field."""
    service = await _service(FakeServer(_ready("1")))
    cases = [({"model": ModelRef("demand_daily")}, "model.name"), ({"top_k": 999}, "top_contributions"),
             ({"bins": []}, "bins")]
    for kwargs, path in cases:
        args = {"bins": _bins(1), "coverage": 0.8, **kwargs}
        with pytest.raises(InvalidArgumentError) as err:
            await service.predict_fill_level(**args)
        assert err.value.field == path
