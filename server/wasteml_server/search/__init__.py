"""Semantic search over service requests: tokenisation, embeddings (Triton), Milvus."""
