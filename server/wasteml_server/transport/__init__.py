"""The gRPC transport: server factory, interceptors, the status table, and the servicers (decode,
call one domain entry point, encode)."""
