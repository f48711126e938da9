"""Generated protobuf and gRPC modules of the wasteml v1 API (package ``wasteml.v1``).

Do not edit: ``scripts/generate.sh`` (``make generate``) writes every file in this folder from
``proto/wasteml/v1/*.proto``; ``scripts/check_generated.sh`` fails when they drift.
"""
