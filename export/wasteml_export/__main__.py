"""``python -m wasteml_export text-encoder|tensorrt``: pure model export (see
:mod:`wasteml_export.cli`; ``wasteml export ...`` adds parity and bench through Triton)."""

from __future__ import annotations

import sys

from wasteml_export.cli import main

if __name__ == "__main__":
    sys.exit(main())
