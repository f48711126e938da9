"""Semantic search over service requests: tokenisation, embeddings (Triton), Milvus.

Modules: ``documents`` (domain types mirroring ``wasteml.v1`` search messages), ``filters``
(validation, Milvus expressions, exact haversine post-filter), ``store`` (Milvus Lite or server
through pymilvus), ``embedding`` (the ``Embedder`` protocol; Triton and in-process ONNX Runtime
encoders), ``tokenizer`` (length-bucketed tokenisation), ``ingest`` (Boston 311 documents and
batched idempotent indexing), ``service`` (the async, transport-free API the servicer calls),
``evaluate`` (quality vs BM25, filter recall), ``cli`` (``wasteml ingest``), ``milvus_server``
(an embedded Milvus 2.3 server for tests and benchmarks).
"""
