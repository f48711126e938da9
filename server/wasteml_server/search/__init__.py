"""Semantic search over service requests (domain): documents, filters, embeddings, indexing.

Modules: ``documents`` (types mirroring ``wasteml.v1`` search messages, validation),
``filters`` (validation, the Milvus boolean expressions, exact haversine post-filter),
``encoder`` (``TextEncoder``: tokenise here, embed on the model server), ``embedding`` (the
``Embedder`` protocol; the Triton and in-process ONNX Runtime encoders), ``store`` (the
``DocumentStore`` port; ``adapters.milvus`` implements it), ``ingest`` (batched, idempotent
indexing), ``service`` (the async API the servicer and the planner call).
"""
