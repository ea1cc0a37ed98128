"""What is installed beside the package: an input of what hebdo-mail keeps from one command to
the next (the settings' checked copy, a build's mail cache), which an upgrade must invalidate."""

from __future__ import annotations

import os
import sys


def distributions() -> list[str]:
    """Every installed distribution with its version, as site-packages names them."""
    names: list[str] = []
    for entry in sys.path:
        if entry.endswith("-packages") and os.path.isdir(entry):
            names += sorted(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info")))
    return names
