"""Seed audiences as the service reads them: one Parquet file of user ids per name, beside the snapshot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scoring.settings import Settings


def seed_folder(settings: Settings) -> Path:
    return settings.snapshot_dir / "seeds"


def load_seed(folder: Path, name: str) -> pd.Series:
    path = folder / f"{name}.parquet"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.parquet"))
        raise KeyError(f"unknown seed_name {name!r}; known seeds: {known}")
    return pd.read_parquet(path)["user_id"]
