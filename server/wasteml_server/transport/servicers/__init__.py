"""Thin gRPC servicers: protobuf <-> domain types; errors go through the interceptor table."""
