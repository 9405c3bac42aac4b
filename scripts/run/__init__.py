"""Process mode (``make run``): supervisord configuration, launcher, hot reload, measurements.

Importing this package puts the checkout's own packages first on ``sys.path``, so the
launcher (which seeds the demo universe with the shared library) runs the same code as
the programs it starts, even from a copy of the tree.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _part in reversed(("libs/agentsys", "services/worker", "services/orchestrator", "services/gateway",
                       "services/redis", "services/postgres", "clients/agentctl")):
    if str(_ROOT / _part) not in sys.path:
        sys.path.insert(0, str(_ROOT / _part))
