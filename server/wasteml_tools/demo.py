"""The main job (``wasteml demo``, the README's first command).

Starts the local Triton and the orchestration server on a free loopback port, then talks to it
only through the gRPC API with the Python client (``wasteml.client``):

1. ``ModelAdmin.ListModels`` — what Triton serves;
2. ``SemanticSearch.IndexDocuments`` — the 20,832 real Boston 311 requests (idempotent: a
   re-run re-embeds nothing that is stored unchanged);
3. ``SemanticSearch.Search`` — plain-words queries, one with a radius filter;
4. ``Forecasting.ForecastDemand`` — Austin garbage tonnage with an interval;
5. ``CollectionPlanner.PlanDay`` — a day of skip collection in Blantyre on real data, streamed;

then prints a report and writes a PNG map of the planned routes. Every number printed comes
from the running services.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from wasteml.client import WastemlClient
from wasteml.v1 import admin_pb2, forecasting_pb2, planning_pb2, routing_pb2, search_pb2
from wasteml_server.app import BackgroundServer
from wasteml_server.core.settings import Settings
from wasteml_tools.planning.blantyre_request import plan_day_request
from wasteml_tools.search.boston311 import read_boston_311

logger = logging.getLogger("wasteml.demo")

BOSTON_FILE = Path("service_requests/boston_311_2015_sanitation.csv")
#: Boston Common, a point for the radius-filtered search.
BOSTON_COMMON = (42.3551, -71.0657)


def _documents(data_dir: Path, on_doc) -> Iterator[search_pb2.SearchDocument]:
    for doc in read_boston_311(data_dir / BOSTON_FILE):
        msg = search_pb2.SearchDocument(id=doc.id, text=doc.text, kind=doc.kind, source=doc.source,
                                        location_approximate=doc.location_approximate)
        if doc.location is not None:
            msg.location.latitude_deg = doc.location.latitude_deg
            msg.location.longitude_deg = doc.location.longitude_deg
        msg.created_at.FromDatetime(doc.created_at)
        on_doc()
        yield msg


def _hits_table(title: str, hits, with_distance: bool = False) -> Table:
    table = Table(title=title)
    for col in ("score", "case type", "opened", "text") + (("distance",) if with_distance else ()):
        table.add_column(col, overflow="fold")
    for h in hits:
        row = [f"{h.score:.3f}", h.kind, h.created_at.ToDatetime().strftime("%Y-%m-%d"), h.text[:70]]
        if with_distance:
            row.append(f"{h.distance_m:.0f} m")
        table.add_row(*row)
    return table


def write_route_map(plan: planning_pb2.Plan, request: planning_pb2.PlanDayRequest, path: Path) -> Path:
    """PNG map of a plan: bins coloured by predicted fill, each truck's route, depot and dump.

    Route legs are drawn as straight lines between consecutive stops; the distances in the
    plan are the real road distances.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fills = {d.bin_id: d.predicted_fill_fraction for r in plan.routes for s in r.stops if s.id and
             s.HasField("reason") for d in [s.reason]}
    fills.update({d.bin_id: d.predicted_fill_fraction for d in plan.unserved_bins})
    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    lat = np.array([b.location.latitude_deg for b in request.bins])
    lon = np.array([b.location.longitude_deg for b in request.bins])
    fill = np.array([fills.get(b.bin_id, np.nan) for b in request.bins])
    served = {s.id for r in plan.routes for s in r.stops if s.kind == planning_pb2.PLAN_STOP_KIND_BIN}
    colours = plt.get_cmap("tab10")
    for i, route in enumerate(plan.routes):
        pts = [(s.location.longitude_deg, s.location.latitude_deg) for s in route.stops]
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, "-", color=colours(i % 10), lw=1.6, alpha=0.75,
                label=f"{route.vehicle_id}: {route.bins_served} skips, {route.distance_m / 1000:.0f} km")
    sc = ax.scatter(lon, lat, c=fill, cmap="RdYlGn_r", vmin=0, vmax=1, s=70, edgecolors="black",
                    linewidths=[1.8 if b.bin_id in served else 0.4 for b in request.bins], zorder=3)
    fig.colorbar(sc, ax=ax, shrink=0.7, label="predicted fill fraction at the start of the shift")
    depot, dump = request.depots[0].location, request.facilities[0].location
    ax.scatter([depot.longitude_deg], [depot.latitude_deg], marker="*", s=400, c="gold", edgecolors="black",
               zorder=4, label=f"depot: {request.depots[0].id}")
    ax.scatter([dump.longitude_deg], [dump.latitude_deg], marker="^", s=220, c="saddlebrown", edgecolors="black",
               zorder=4, label=f"dump: {request.facilities[0].id}")
    sd = plan.service_date
    ax.set_title(f"Blantyre skip collection {sd.year}-{sd.month:02d}-{sd.day:02d}: "
                 f"{plan.totals.bins_served} skips emptied, {plan.totals.distance_m / 1000:.0f} km "
                 f"(thick rim = emptied today)")
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_aspect(1 / np.cos(np.deg2rad(np.nanmean(lat))))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(settings: Settings, plan_time_limit_s: float = 20.0) -> int:
    """Run the main job; returns the process exit code."""
    console = Console()
    settings = settings.model_copy(update={"port": 0})
    data_dir = Path(settings.data_dir)
    console.rule("[bold]wasteml demo")
    server = BackgroundServer(settings)
    started = time.perf_counter()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    try:
        with progress:
            task = progress.add_task("starting local Triton and the gRPC server", total=None)
            port = server.start(600)
            client = WastemlClient(f"127.0.0.1:{port}", token=settings.auth_token, timeout_s=120)
            client.wait_until_serving(timeout_s=120)
            progress.update(task, total=1, completed=1)

            models = client.list_models()

            total = sum(1 for _ in open(data_dir / BOSTON_FILE, encoding="utf-8")) - 1
            task = progress.add_task("SemanticSearch.IndexDocuments: Boston 311 (2015)", total=total)
            indexed = client.index_documents(_documents(data_dir, lambda: progress.advance(task)),
                                             timeout_s=1800)

            task = progress.add_task("SemanticSearch.Search", total=2)
            raccoon = client.search_documents(search_pb2.SearchRequest(query="dead raccoon on the sidewalk", top_k=5))
            progress.advance(task)
            near = search_pb2.SearchRequest(query="overflowing dumpster, trash all over the ground", top_k=5)
            near.filters.radius.center.latitude_deg, near.filters.radius.center.longitude_deg = BOSTON_COMMON
            near.filters.radius.radius_m = 1500
            nearby = client.search_documents(near)
            progress.advance(task)

            task = progress.add_task("Forecasting.ForecastDemand", total=1)
            demand = client.forecast_demand(forecasting_pb2.ForecastDemandRequest(
                series=forecasting_pb2.SeriesId(grain=forecasting_pb2.SERIES_GRAIN_SERVICE_LINE_DAILY,
                                                id="garbage"),
                horizon=14, quantiles=[0.1, 0.9]))
            progress.advance(task)

            request = plan_day_request(data_dir, time_limit_s=plan_time_limit_s)
            task = progress.add_task("CollectionPlanner.PlanDay (Blantyre)", total=100)
            plan = None
            stage_names = planning_pb2.PlanStage
            for event in client.plan_day(request, timeout_s=600):
                if event.HasField("progress"):
                    p = event.progress
                    stage = stage_names.Name(p.stage).removeprefix("PLAN_STAGE_").lower()
                    best = f", best {p.solver_best_objective:.1f}" if p.HasField("solver_best_objective") else ""
                    progress.update(task, completed=int(100 * (p.stage - 1 + p.fraction) / 5),
                                    description=f"PlanDay: {stage}: {p.message[:60]}{best}")
                else:
                    plan = event.plan
            progress.update(task, completed=100)
        assert plan is not None, "PlanDay ended without a plan"
        _report(console, port, started, models, indexed, raccoon, nearby, demand, plan, request.time_zone)
        png = write_route_map(plan, request, Path(settings.var_dir) / "blantyre_plan.png")
        console.print(f"route map: [bold]{png}[/bold]")
        client.close()
        return 0
    finally:
        server.stop()
        console.print(f"done in {time.perf_counter() - started:.1f} s")


def _report(console: Console, port, started, models, indexed, raccoon, nearby, demand, plan, tz: str) -> None:
    zone = ZoneInfo(tz)
    console.print(f"server on 127.0.0.1:{port}; all calls below went through its gRPC API")

    table = Table(title="ModelAdmin.ListModels: models on the local Triton")
    for col in ("model", "versions", "max batch", "outputs"):
        table.add_column(col)
    for m in models.models:
        table.add_row(m.name, ", ".join(f"v{v.version}:{admin_pb2.ModelState.Name(v.state).removeprefix('MODEL_STATE_')}"
                                        for v in m.versions), str(m.max_batch_size),
                      ", ".join(f"{t.name}{list(t.shape)}" for t in m.outputs))
    console.print(table)

    console.print(f"IndexDocuments: {indexed.documents_received} received, {indexed.documents_upserted} "
                  f"embedded and upserted (the rest unchanged), collection holds {indexed.collection_size} "
                  f"({indexed.model.name} v{indexed.model.version})")
    console.print(_hits_table("Search 'dead raccoon on the sidewalk'", raccoon.hits))
    console.print(_hits_table("Search 'overflowing dumpster, trash all over the ground' within 1.5 km of "
                              "Boston Common", nearby.hits, with_distance=True))

    table = Table(title=f"ForecastDemand: Austin city-wide garbage, tonnes/day "
                        f"({demand.model.name} v{demand.model.version}, interval "
                        f"{demand.interval_model.name or '-'})")
    for col in ("date", "point (t)", "10 %", "90 %"):
        table.add_column(col, justify="right")
    for p in demand.points:
        q = {round(x.quantile, 2): x.value_kg for x in p.quantiles}
        table.add_row(f"{p.date.year}-{p.date.month:02d}-{p.date.day:02d}", f"{p.point_kg / 1000:.0f}",
                      f"{q.get(0.1, float('nan')) / 1000:.0f}", f"{q.get(0.9, float('nan')) / 1000:.0f}")
    console.print(table)

    t = plan.totals
    table = Table(title=f"PlanDay: Blantyre skips, plan {plan.plan_id[:8]} "
                        f"({routing_pb2.SolutionStatus.Name(plan.status)}, "
                        f"{routing_pb2.Engine.Name(plan.engine)})")
    table.caption = f"back: arrival at the depot, {tz} time"
    for col in ("truck", "skips", "dump trips", "km", "driving h", "first stop", "back"):
        table.add_column(col, no_wrap=col in ("truck", "first stop"))
    for r in plan.routes:
        first = next((s for s in r.stops if s.kind == planning_pb2.PLAN_STOP_KIND_BIN), None)
        table.add_row(r.vehicle_id, str(r.bins_served), str(r.dump_trips), f"{r.distance_m / 1000:.1f}",
                      f"{r.driving_s / 3600:.1f}",
                      first.id if first else "-",
                      r.stops[-1].arrival_time.ToDatetime(tzinfo=UTC).astimezone(zone).strftime("%H:%M"))
    console.print(table)
    console.print(
        f"totals: {t.bins_served} skips emptied ({t.bins_must_visit} must-visit, {t.bins_optional} optional "
        f"candidates), {t.dump_trips} dump trips, {t.distance_m / 1000:.1f} km, {t.driving_s / 3600:.1f} h "
        f"driving; predicted overflows avoided {t.predicted_overflows_avoided}, left "
        f"{t.predicted_overflows_left}; models: "
        + ", ".join(f"{m.name} v{m.version}" for m in plan.models_used))
    for f in plan.fallbacks:
        console.print(f"fallback: {f.dependency}: {f.reason}")
    left = [d for d in plan.unserved_bins if d.selection == planning_pb2.BIN_SELECTION_MUST_VISIT]
    if left:
        console.print(f"must-visit skips the fleet could not reach today: {len(left)} "
                      f"({', '.join(d.bin_id for d in left[:8])}{' ...' if len(left) > 8 else ''})")
    example = next((s.reason for r in plan.routes for s in r.stops if s.HasField("reason")), None)
    if example is not None:
        console.print(f"example reason: {example.bin_id}: {example.explanation}")
    console.print(f"elapsed {time.perf_counter() - started:.1f} s")
