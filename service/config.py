"""How the BentoML server runs: one place for the service decorator's options.

The benchmark's reference services use the same options, so that they are compared like for like.
"""

from __future__ import annotations

from scoring.settings import get_settings

SERVICE_CONFIG = {
    # Worker processes; each holds its own models, and maps the one copy of the snapshot and its derived arrays.
    "workers": get_settings().serve_workers,
    "traffic": {"timeout": 60},
    # The audit log already records every call (without personal data); BentoML's access log
    # would repeat it and cost about a sixth of a single-user request.
    "logging": {"access": {"enabled": False}},
}
