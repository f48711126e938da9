"""Protobuf <-> domain, field by field, per contract file (used by transport and by the storage
adapters, which keep results in the contract's wire format)."""
