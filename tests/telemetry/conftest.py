"""The loopback OTLP collector fixture; the helpers live in ``otel_rig``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from otel_rig import collector

__all__ = ["collector"]
