"""The batched indexing pipeline behind ``IndexDocuments`` and the ingestion tools.

Batches of documents are checked against the store (unchanged documents are skipped, so
re-running changes nothing), embedded with a few requests in flight (full batches of the
encoder's ``max_batch_size`` for Triton's dynamic batcher) and upserted by id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import NoReturn

from wasteml_server.core.common import ModelRef
from wasteml_server.core.errors import InvalidArgumentError, UnavailableError, WastemlError
from wasteml_server.search.documents import DEFAULT_MAX_TEXT_CHARS, Document, validate_documents
from wasteml_server.search.embedding import Embedder
from wasteml_server.search.store import DocumentStore


@dataclass
class IndexReport:
    """Outcome of :func:`index_documents`.

    Attributes:
        received: documents read from the input.
        upserted: documents embedded and written (new or changed).
        unchanged: documents skipped because the stored row was identical.
        approximate_location: received documents flagged ``location_approximate``.
        seconds: wall time, s.
        model: the encoder (and version) used.
        kinds: received documents per kind.
        collection_size: rows in the collection afterwards (set by the search service; None
            where nobody counted).
    """

    received: int = 0
    upserted: int = 0
    unchanged: int = 0
    approximate_location: int = 0
    seconds: float = 0.0
    model: ModelRef = ModelRef("")
    kinds: dict[str, int] = field(default_factory=dict)
    collection_size: int | None = None

    @property
    def docs_per_s(self) -> float:
        """Received documents per second of wall time."""
        return self.received / self.seconds if self.seconds > 0 else 0.0


def with_stored_count(error: BaseException, stored: int, total: int | None = None) -> BaseException:
    """``error`` of a failed ingestion, its message extended with how many documents were
    stored before it (``"...; 128 of 150 documents were confirmed stored before the failure
    ..."``), so a caller never has to guess.

    Only domain errors (``WastemlError``) are extended (same class, same fields otherwise); an
    ``InvalidArgumentError`` keeps its field violations untouched, and anything else (a bug,
    a cancellation) is returned as is.

    Args:
        error: what failed.
        stored: documents of batches that finished (written, or found unchanged).
        total: documents of the whole input, when known.
    """
    if isinstance(error, InvalidArgumentError) or not isinstance(error, WastemlError):
        return error
    of = f" of {total}" if total is not None else ""
    note = (f"{stored}{of} documents were confirmed stored before the failure (a batch being "
            "written then may be stored too); re-sending them is safe (ingestion is idempotent)")
    if isinstance(error, UnavailableError):
        return UnavailableError(error.dependency, f"{error.detail}; {note}")
    try:
        return type(error)(f"{error.message}; {note}")
    except TypeError:  # a domain error with another constructor: keep it unchanged
        return error


def _raise_with_stored(error: BaseException, report: IndexReport, total: int | None) -> NoReturn:
    extended = with_stored_count(error, report.upserted + report.unchanged, total)
    if extended is error:
        raise error
    raise extended from error


async def _batches(
    docs: Iterable[Document] | AsyncIterable[Document], size: int
) -> AsyncIterable[list[Document]]:
    batch: list[Document] = []
    if isinstance(docs, AsyncIterable):
        async for d in docs:
            batch.append(d)
            if len(batch) == size:
                yield batch
                batch = []
    else:
        for d in docs:
            batch.append(d)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


async def index_documents(
    docs: Iterable[Document] | AsyncIterable[Document],
    store: DocumentStore,
    embedder: Embedder,
    *,
    collection: str | None = None,
    batch_size: int = 64,
    in_flight: int = 4,
    skip_unchanged: bool = True,
    flush: bool = True,
    progress: Callable[[int], None] | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    total: int | None = None,
) -> IndexReport:
    """Embed and upsert documents by id, ``in_flight`` batches at a time.

    The encoder's ``name:version`` tag is fixed before the first batch (``resolve_version()``
    when the embedder has one), since it decides which stored vectors are current.
    Per batch: validate; drop repeats of an id within the batch (last wins); ask the store
    which documents differ from their stored row (``skip_unchanged``); embed only those
    (distinct texts only) and upsert them. Re-running on the same input therefore embeds and
    writes nothing. Store calls run in worker threads (``asyncio.to_thread``).

    Args:
        docs: documents (sync or async iterable).
        store: the document store.
        embedder: the text encoder.
        collection: target collection; default the store's.
        batch_size: documents per embedding request (64 = the encoder's ``max_batch_size``).
        in_flight: batches processed concurrently (keeps Triton's batcher fed).
        skip_unchanged: compare with stored rows and skip identical ones.
        flush: flush at the end so Milvus Lite indexes the new rows.
        progress: called with the number of documents finished after each batch.
        max_text_chars: most characters of a document's text (``settings.search_max_text_chars``).
        total: number of documents of the whole input when known (for the stored-count note
            of a failure); ``len(docs)`` of a sized input by default.

    Returns:
        the :class:`IndexReport`.

    Raises:
        InvalidArgumentError: a bad document (``documents[i].<field>``, ``i`` its position in
            the input); batches before it may already be stored (the ``IndexDocuments`` RPC
            validates the whole stream first, see ``SemanticSearchService.index_documents``).
        UnavailableError: Milvus or the encoder is down; the message says how many documents
            were stored before the failure (:func:`with_stored_count`), as do other domain
            errors raised by the store or the encoder.
    """
    if batch_size < 1 or in_flight < 1:
        raise ValueError("batch_size and in_flight must be >= 1")
    t0 = time.perf_counter()
    if total is None and isinstance(docs, Sized):
        total = len(docs)
    resolve = getattr(embedder, "resolve_version", None)
    if resolve is not None:  # e.g. TritonEmbedder with "latest": pin the served version first
        await resolve()
    tag = embedder.model
    report = IndexReport(model=tag)
    await asyncio.to_thread(store.ensure_collection, collection)
    sem = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    errors: list[BaseException] = []

    async def handle(batch: list[Document]) -> None:
        try:
            if skip_unchanged:
                changed = await asyncio.to_thread(store.changed, batch, tag, collection)
                todo = [d for d, c in zip(batch, changed, strict=True) if c]
            else:
                todo = batch
            if todo:
                texts = sorted({d.text for d in todo})
                vectors = await embedder.embed(texts)
                row = {t: i for i, t in enumerate(texts)}
                vecs = vectors[[row[d.text] for d in todo]]
                await asyncio.to_thread(store.upsert, todo, vecs, tag, collection)
            report.upserted += len(todo)
            report.unchanged += len(batch) - len(todo)
            if progress is not None:
                progress(len(batch))
        except BaseException as exc:  # re-raised below, after in-flight batches settle
            errors.append(exc)
        finally:
            sem.release()

    position = 0
    async for batch in _batches(docs, batch_size):
        if errors:
            break
        try:
            validate_documents(batch, start=position, allow_repeats=True, max_text_chars=max_text_chars)
        except InvalidArgumentError as exc:
            errors.append(exc)
            break
        position += len(batch)
        latest = {d.id: d for d in batch}  # a repeated id within a batch: the last one wins
        batch = list(latest.values())
        report.received += len(batch)
        report.approximate_location += sum(d.location_approximate for d in batch)
        for d in batch:
            report.kinds[d.kind] = report.kinds.get(d.kind, 0) + 1
        await sem.acquire()
        task = asyncio.create_task(handle(batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    if errors:
        _raise_with_stored(errors[0], report, total)
    if flush and report.upserted:
        try:
            await asyncio.to_thread(store.flush, collection)
        except WastemlError as exc:
            _raise_with_stored(exc, report, total)
    report.seconds = time.perf_counter() - t0
    return report


