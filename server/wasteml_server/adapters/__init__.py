"""Adapters to what the domain depends on: Triton, Milvus, the SQL store, the cache. Each
implements a port the domain declares (``core.inference``, ``core.audit``, ``search.store``,
``routing.jobs``, ``planning.ports``, ``admin.registry``)."""
