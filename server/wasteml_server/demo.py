"""The main job (``wasteml demo``, the README's first command).

Starts the local Triton and the orchestration server on a free loopback port, then talks to
it only through the gRPC API with the Python client (``wasteml.client``) and prints a
report. Every number printed comes from the running services.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from wasteml.client import WastemlClient
from wasteml_server.app import BackgroundServer
from wasteml_server.settings import Settings

logger = logging.getLogger("wasteml.demo")

BOSTON_FILE = Path("service_requests/boston_311_2015_sanitation.csv")


def real_texts(data_dir: Path, per_type: int = 1, limit: int = 6) -> list[tuple[str, str]]:
    """``(case type, text)`` pairs from the Boston 311 file, one per case type, first rows first."""
    seen: dict[str, str] = {}
    with open(data_dir / BOSTON_FILE, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kind = row["TYPE"]
            if kind in seen or not row["CLOSURE_REASON"].strip():
                continue
            seen[kind] = f"{kind}. {row['CASE_TITLE']}. {row['CLOSURE_REASON']}"
            if len(seen) >= limit:
                break
    return list(seen.items())


def _stage(progress: Progress, text: str, fn: Callable[[], object]) -> object:
    task = progress.add_task(text, total=None)
    try:
        return fn()
    finally:
        progress.update(task, completed=1, total=1)
        progress.stop_task(task)


def run_demo(settings: Settings) -> int:
    """Run the main job; returns the process exit code."""
    console = Console()
    settings = settings.model_copy(update={"port": 0})
    console.rule("[bold]wasteml demo")
    server = BackgroundServer(settings)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console)
    started = time.perf_counter()
    try:
        with progress:
            port = _stage(progress, "starting local Triton and the gRPC server", lambda: server.start(600))
            client = WastemlClient(f"127.0.0.1:{port}", token=settings.auth_token, timeout_s=60)
            _stage(progress, "waiting for health SERVING", lambda: client.wait_until_serving(timeout_s=120))
            models = _stage(progress, "ModelAdmin.ListModels", client.list_models)
            texts = real_texts(Path(settings.data_dir))
            query = "dead raccoon on the sidewalk"
            embed = _stage(
                progress, "SemanticSearch.Embed on real Boston 311 texts",
                lambda: client.embed([query] + [t for _, t in texts]),
            )
        console.print(f"server on 127.0.0.1:{port}, up in {time.perf_counter() - started:.1f} s")

        table = Table(title="Models on Triton (ModelAdmin.ListModels)")
        for col in ("model", "versions", "backend", "max batch", "inputs", "outputs"):
            table.add_column(col)
        for m in models.models:
            table.add_row(
                m.name,
                ", ".join(f"{v.version}:{v.state}" for v in m.versions),
                m.backend or m.platform,
                str(m.max_batch_size),
                ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.inputs),
                ", ".join(f"{t.name} {t.datatype}{list(t.shape)}" for t in m.outputs),
            )
        console.print(table)

        vectors = np.array([e.values for e in embed.embeddings], dtype=np.float32)
        scores = vectors[1:] @ vectors[0]
        table = Table(title=f"SemanticSearch.Embed ({embed.model.name}, dim {embed.dimension}): "
                            f"cosine to the query {query!r}")
        table.add_column("case type")
        table.add_column("tokens", justify="right")
        table.add_column("cosine", justify="right")
        for (kind, _), emb, score in sorted(
            zip(texts, embed.embeddings[1:], scores, strict=True), key=lambda x: -x[2]
        ):
            table.add_row(kind, str(emb.token_count), f"{score:.3f}")
        console.print(table)
        console.print(f"L2 norms of the embeddings: min {np.linalg.norm(vectors, axis=1).min():.6f}, "
                      f"max {np.linalg.norm(vectors, axis=1).max():.6f}")
        client.close()
        return 0
    finally:
        server.stop()
        console.print(f"done in {time.perf_counter() - started:.1f} s")
