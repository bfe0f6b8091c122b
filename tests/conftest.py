"""Shared test fixtures and paths. Real data lives in tests/data (see each folder's SOURCE.txt)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"
ROOT_DIR = DATA / "root"
DBS_JSON = DATA / "dbs" / "dbs_files_lumis.json"

settings.register_profile(
    "default", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
