"""A base simulated in chunks: one warehouse whose ids never collide across chunks, whose tables read as a
single world's do, and whose first chunk is the world of its size."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scoring.settings import Settings
from training.data.features import compute_features
from training.data.simulate import SimConfig, ip_address, simulate
from training.data.simulate_chunks import simulate_into
from training.data.warehouse import connect, data_end

CFG = SimConfig(users=5000, days=150, seed=3)
CHUNK = 2000


def _settings(root: Path, chunk: int) -> Settings:
    return Settings(data_dir=root / "data", simulate_chunk_users=chunk, simulate_processes=2)


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    s = _settings(tmp_path_factory.mktemp("chunked"), CHUNK)
    simulate_into(CFG, s, progress=False)
    return s


def _read(s: Settings, name: str, folder: str = "warehouse") -> pd.DataFrame:
    return pd.read_parquet((s.warehouse_dir if folder == "warehouse" else s.truth_dir) / f"{name}.parquet")


def test_ids_are_unique_across_chunks(chunked: Settings) -> None:
    users = _read(chunked, "users")
    assert len(users) == CFG.users and users["user_id"].is_unique
    assert _read(chunked, "transactions")["txn_id"].is_unique
    loans = _read(chunked, "loans")
    assert loans["loan_id"].is_unique
    assert set(_read(chunked, "instalments")["loan_id"]) <= set(loans["loan_id"])
    truth = _read(chunked, "loans", "truth")
    assert truth["loan_id"].tolist() == loans["loan_id"].tolist()
    ids = set(users["user_id"])
    for name in ("daily_activity", "transactions", "loans", "contacts", "campaign_assignments", "opt_outs"):
        assert set(_read(chunked, name)["user_id"]) <= ids, name


def test_chunks_share_nothing_but_campaigns(chunked: Settings) -> None:
    """A device, an IP, an invite or a ring never spans two chunks; every chunk got the same campaigns."""
    users = _read(chunked, "users")
    chunk = (users["user_id"] - users["user_id"].min()) // CHUNK
    for key in ("device_id", "ip"):
        assert (users.assign(chunk=chunk).groupby(key)["chunk"].nunique() == 1).all(), key
    invited = users.dropna(subset=["inviter_id"])
    inviter_chunk = (invited["inviter_id"].astype("int64") - users["user_id"].min()) // CHUNK
    assert (inviter_chunk.to_numpy() == chunk[invited.index].to_numpy()).all()
    rings = _read(chunked, "users", "truth").assign(chunk=chunk.to_numpy()).query("ring_id >= 0")
    assert rings["ring_id"].nunique() > 3 and (rings.groupby("ring_id")["chunk"].nunique() == 1).all()
    sent = _read(chunked, "campaign_assignments").assign(chunk=lambda d: (d["user_id"] - users["user_id"].min()) // CHUNK)
    assert sent.groupby("campaign_id")["chunk"].nunique().min() == 3
    assert len(_read(chunked, "campaigns")) == sent["campaign_id"].nunique()


def test_first_chunk_is_the_world_of_its_size(chunked: Settings, tmp_path: Path) -> None:
    alone = simulate(SimConfig(users=CHUNK, days=CFG.days, seed=CFG.seed), progress=False).tables["users"]
    alone.to_parquet(tmp_path / "users.parquet", index=False)  # as the warehouse stores it
    first = _read(chunked, "users").iloc[:CHUNK]
    pd.testing.assert_frame_equal(first, pd.read_parquet(tmp_path / "users.parquet")[first.columns])


def test_tables_read_as_one_worlds(chunked: Settings, tmp_path: Path) -> None:
    """The same columns and dtypes as a world simulated whole, and features computed over them."""
    whole = _settings(tmp_path, CFG.users)
    simulate_into(CFG, whole, progress=False)
    for path in sorted(whole.warehouse_dir.glob("*.parquet")):
        assert _read(chunked, path.stem).dtypes.to_dict() == pd.read_parquet(path).dtypes.to_dict(), path.stem
    with connect(chunked) as con:
        feats = compute_features(con, data_end(con).date())
    assert len(feats) == CFG.users and feats["ring_size"].max() > 2


def test_addresses_stay_distinct_past_the_10_block() -> None:
    addresses = [ip_address(i) for i in (0, 2**24 - 1, 2**24, 50_000_000)]
    assert addresses == ["10.0.0.0", "10.255.255.255", "11.0.0.0", "12.250.240.128"]
