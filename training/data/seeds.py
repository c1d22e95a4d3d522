"""Named seed audiences: SQL over the warehouse or id lists, materialised into the serving snapshot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scoring.artifacts import write_checksums
from scoring.seeds import seed_folder
from scoring.settings import Settings
from training.data import warehouse

SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"


def materialise(settings: Settings, source: Path = SEEDS_DIR) -> dict[str, int]:
    """Evaluate every seeds/*.sql and copy every seeds/*.csv; return the size of each seed."""
    out = seed_folder(settings)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.parquet"):  # the folder mirrors seeds/: a seed removed there goes here too
        stale.unlink()
    sizes: dict[str, int] = {}
    with warehouse.connect(settings) as con:
        # A seed's ids take the warehouse's id type: a CSV of text ids that look like numbers reads as ints.
        text_ids = con.execute("SELECT typeof(user_id) FROM users LIMIT 1").fetchone()[0] == "VARCHAR"
        for path in sorted(source.glob("*.sql")):
            ids = con.execute(path.read_text()).df()
            sizes[path.stem] = _write(ids, out / f"{path.stem}.parquet", path, text_ids)
    for path in sorted(source.glob("*.csv")):
        sizes[path.stem] = _write(pd.read_csv(path), out / f"{path.stem}.parquet", path, text_ids)
    # Checked by the service before it reports ready: a changed file would expand another audience.
    write_checksums({name: out / f"{name}.parquet" for name in sizes}, out)
    return sizes


def _write(ids: pd.DataFrame, target: Path, source: Path, text_ids: bool) -> int:
    if "user_id" not in ids.columns:
        raise ValueError(f"seed {source.name} must yield a user_id column, got {list(ids.columns)}")
    ids = ids[["user_id"]].drop_duplicates().astype({"user_id": str if text_ids else "int64"}).sort_values("user_id")
    ids.to_parquet(target, index=False)
    return len(ids)
