"""Put the repository root on sys.path, so the tests can import training/.

The training recipe lives in the top-level folder training/, outside the rtvoice package.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
