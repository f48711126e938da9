"""``wasteml ingest``: load real service requests into Milvus, and measure search quality.

Commands (the lead mounts :data:`app` as ``wasteml ingest``):

- ``boston-311``: embed and upsert the 20,832 Boston 311 (2015) requests; idempotent.
- ``evaluate``: ingest (idempotent), then print precision@10 / nDCG@10 of semantic search vs
  BM25 and filter correctness / recall@10 vs brute force (``search/evaluate.py``).

Both read ``WASTEML_*`` settings (``milvus_uri``, ``milvus_collection``, ``data_dir``,
``model_repository``). ``--embedder onnx`` (default) runs the exported encoder in-process with
ONNX Runtime; ``--embedder triton`` calls a running Triton at ``--triton-url`` (or
``settings.triton_url``), as the server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from wasteml_models import TEXT_ENCODER
from wasteml_models.config import EncoderSignature
from wasteml_server.adapters.milvus import MilvusStore
from wasteml_server.core.settings import Settings
from wasteml_server.search.embedding import Embedder, OnnxEmbedder, TritonEmbedder
from wasteml_server.search.ingest import IndexReport, index_documents
from wasteml_tools.search.boston311 import BOSTON_311_FILE, BOSTON_311_ROWS, read_boston_311

app = typer.Typer(help="Load real service requests into the search collection.", no_args_is_help=True)


class EmbedderKind(StrEnum):
    """Which encoder runtime embeds the documents."""

    onnx = "onnx"
    triton = "triton"


@contextlib.asynccontextmanager
async def open_embedder(
    settings: Settings, kind: EmbedderKind, triton_url: str | None, threads: int = 0
) -> AsyncIterator[Embedder]:
    """An embedder for CLI use; the Triton client is closed on exit.

    Raises:
        typer.BadParameter: ``triton`` without a URL.
        FileNotFoundError: ``onnx`` before the export ran.
    """
    if kind is EmbedderKind.onnx:
        yield OnnxEmbedder.from_repository(settings.model_repository, threads=threads)
        return
    url = triton_url or settings.triton_url
    if not url:
        raise typer.BadParameter("--triton-url (or WASTEML_TRITON_URL) is required", param_hint="--triton-url")
    from wasteml_models.tokenizer import TextTokenizer
    from wasteml_server.adapters.triton.client import TritonClient
    from wasteml_server.search.encoder import TextEncoder

    client = TritonClient.from_settings(settings, url)
    try:
        tokenizer = await asyncio.to_thread(TextTokenizer.from_repository, settings.model_repository)
        signature = EncoderSignature.load(settings.model_repository, TEXT_ENCODER)
        yield TritonEmbedder(TextEncoder(client, tokenizer, TEXT_ENCODER, signature, timeout_s=settings.triton_timeout_s))
    finally:
        await client.close()


def _store(settings: Settings, uri: str | None, collection: str | None) -> MilvusStore:
    if uri:
        settings = settings.model_copy(update={"milvus_uri": uri})
    if collection:
        settings = settings.model_copy(update={"milvus_collection": collection})
    return MilvusStore.from_settings(settings, EncoderSignature.load(settings.model_repository, TEXT_ENCODER).dimension)


async def _ingest(
    settings: Settings,
    store: MilvusStore,
    embedder: Embedder,
    limit: int | None,
    batch_size: int,
    in_flight: int,
    quiet: bool,
) -> IndexReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    path = Path(settings.data_dir) / BOSTON_311_FILE
    total = min(limit, BOSTON_311_ROWS) if limit else BOSTON_311_ROWS
    docs = read_boston_311(path, limit=limit)
    with Progress(
        TextColumn("[bold]Boston 311"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=False,
    ) as bar:
        task = bar.add_task("ingest", total=total)
        return await index_documents(
            docs,
            store,
            embedder,
            batch_size=batch_size,
            in_flight=in_flight,
            progress=lambda n: bar.advance(task, n),
        )


@app.command("boston-311")
def boston_311(
    limit: Annotated[int | None, typer.Option(min=1, help="Ingest only the first N rows.")] = None,
    embedder: Annotated[EmbedderKind, typer.Option(help="Encoder runtime.")] = EmbedderKind.onnx,
    triton_url: Annotated[str | None, typer.Option(help="Triton gRPC host:port for --embedder triton.")] = None,
    uri: Annotated[str | None, typer.Option(help="Milvus URI (default settings.milvus_uri).")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection (default settings.milvus_collection).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Texts per embedding request.")] = None,
    in_flight: Annotated[int | None, typer.Option(min=1, help="Embedding requests in flight.")] = None,
    recreate: Annotated[bool, typer.Option(help="Drop the collection first.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Embed and upsert the Boston 311 (2015) requests; re-running changes nothing."""
    settings = Settings()
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO), stream=sys.stderr)
    store = _store(settings, uri, collection)

    async def run() -> IndexReport:
        async with open_embedder(settings, embedder, triton_url) as emb:
            if recreate:
                await asyncio.to_thread(store.drop_collection)
            return await _ingest(
                settings,
                store,
                emb,
                limit,
                batch_size or settings.search_embed_batch,
                in_flight or settings.search_embed_in_flight,
                quiet,
            )

    try:
        report = asyncio.run(run())
        count = store.count()
    finally:
        store.close()
    typer.echo(
        f"received {report.received}, upserted {report.upserted}, unchanged {report.unchanged}, "
        f"approximate location (City Hall fallback) {report.approximate_location}; "
        f"{report.seconds:.1f} s ({report.docs_per_s:.0f} docs/s); "
        f"collection {store.default_collection} on {store.backend} holds {count}; model {report.model}"
    )


@app.command("evaluate")
def evaluate_cmd(
    embedder: Annotated[EmbedderKind, typer.Option(help="Encoder runtime.")] = EmbedderKind.onnx,
    triton_url: Annotated[str | None, typer.Option(help="Triton gRPC host:port for --embedder triton.")] = None,
    uri: Annotated[str | None, typer.Option(help="Milvus URI (default settings.milvus_uri).")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection (default settings.milvus_collection).")] = None,
    queries: Annotated[Path | None, typer.Option(help="Labelled queries JSON (default: the packaged set).")] = None,
    per_query: Annotated[bool, typer.Option(help="Also print nDCG@10 per query.")] = False,
    skip_ingest: Annotated[bool, typer.Option(help="Do not run the (idempotent) ingestion first.")] = False,
) -> None:
    """Print semantic vs BM25 precision@10/nDCG@10 and filter recall@10; exit 1 if a bar fails."""
    from wasteml_tools.search.evaluate import EvalReport, evaluate, load_queries, render

    settings = Settings()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    store = _store(settings, uri, collection)

    async def run() -> EvalReport:
        async with open_embedder(settings, embedder, triton_url) as emb:
            if not skip_ingest:
                await _ingest(
                    settings, store, emb, None, settings.search_embed_batch,
                    settings.search_embed_in_flight, False,
                )
            return await evaluate(store, emb, load_queries(queries))

    try:
        report = asyncio.run(run())
    finally:
        store.close()
    render(report, per_query=per_query)
    if not report.passed:
        raise typer.Exit(1)
