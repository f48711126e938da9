"""wasteml API for Python: generated stubs (``wasteml.v1``) and a typed client (``wasteml.client``)."""
