"""The kernel every layer may use: errors, settings, deadlines, the current call, metrics, and the
value types and ports shared by several domains (``GeoPoint``, ``ModelRef``, ``FallbackNotice``,
the model-server and audit ports)."""
