"""The warehouse contract: good files load, bad ones are refused with table, column and rows."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import make_settings
from training.data.schema import TABLES
from training.data.warehouse import ContractError, load_dir


@pytest.fixture()
def export(settings, tmp_path):
    """The simulated tables written as a bank would hand them over: CSV and Parquet."""
    out = tmp_path / "bank"
    out.mkdir()
    for i, name in enumerate(TABLES):
        df = pd.read_parquet(settings.warehouse_dir / f"{name}.parquet")
        if i % 2:
            df.to_csv(out / f"{name}.csv", index=False)
        else:
            df.to_parquet(out / f"{name}.parquet", index=False)
    return out


def test_valid_files_load(export, tmp_path, settings):
    target = make_settings(tmp_path / "target")
    counts = load_dir(export, target)
    src_users = pd.read_parquet(settings.warehouse_dir / "users.parquet")
    assert counts["users"] == len(src_users)
    import duckdb

    with duckdb.connect(str(target.warehouse_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM daily_activity").fetchone()[0] == counts["daily_activity"]
        # Contacts came as CSV: their times are timestamps again, to the minute.
        first = con.execute("SELECT min(contact_time), typeof(min(contact_time)) FROM contacts").fetchone()
    assert counts["contacts"] == len(pd.read_parquet(settings.warehouse_dir / "contacts.parquet")) > 0
    assert first[1] == "TIMESTAMP" and first[0].hour >= 8


def test_bad_contacts_are_refused(export, tmp_path):
    contacts = pd.read_csv(export / "contacts.csv")
    contacts.loc[2, "arm"] = "red_packet/fax/morning"
    contacts.loc[4, "contact_time"] = "yesterday"
    contacts.to_csv(export / "contacts.csv", index=False)
    with pytest.raises(ContractError) as err:
        load_dir(export, make_settings(tmp_path / "target"))
    assert "contacts.arm: values outside" in str(err.value) and "[2]" in str(err.value)
    assert "contacts.contact_time: not a timestamp, 1 rows (first: [4])" in str(err.value)


def test_bad_values_are_refused_naming_table_column_and_rows(export, tmp_path):
    users = pd.read_parquet(export / "users.parquet")
    users.loc[[3, 7], "age"] = -1
    users.loc[5, "acquisition_channel"] = "telepathy"
    users.to_parquet(export / "users.parquet", index=False)
    target = make_settings(tmp_path / "target")
    with pytest.raises(ContractError) as err:
        load_dir(export, target)
    msg = str(err.value)
    assert "users.age: below 18" in msg and "2 rows (first: [3, 7])" in msg
    assert "users.acquisition_channel: values outside" in msg and "[5]" in msg
    assert not target.warehouse_db.exists(), "nothing written when a table fails"


def test_missing_column_and_missing_table(export, tmp_path):
    pd.read_csv(export / "daily_activity.csv").drop(columns="launches").to_csv(export / "daily_activity.csv", index=False)
    for p in export.glob("campaigns.*"):
        p.unlink()
    with pytest.raises(ContractError) as err:
        load_dir(export, make_settings(tmp_path / "target"))
    assert "daily_activity: missing columns ['launches']" in str(err.value)
    assert "campaigns: no campaigns.parquet or campaigns.csv" in str(err.value)


def test_cli_load_exits_nonzero_with_the_message(export, tmp_path):
    pd.read_parquet(export / "users.parquet").assign(city_tier=9).to_parquet(export / "users.parquet", index=False)
    env = {"OPSCORE_DATA_DIR": str(tmp_path / "cli"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "training", "load", str(export)], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert "users.city_tier: above 5" in r.stderr


def test_loans_and_instalments_load_and_a_bad_instalment_is_refused(export, tmp_path, settings):
    counts = load_dir(export, make_settings(tmp_path / "good"))
    assert counts["instalments"] == len(pd.read_parquet(settings.warehouse_dir / "instalments.parquet")) > 0
    assert counts["loans"] > 0
    path = next(export.glob("instalments.*"))
    inst = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    inst.loc[[2], "days_past_due"] = -5
    inst.to_parquet(path, index=False) if path.suffix == ".parquet" else inst.to_csv(path, index=False)
    with pytest.raises(ContractError) as err:
        load_dir(export, make_settings(tmp_path / "bad"))
    assert "instalments.days_past_due: below 0, 1 rows (first: [2])" in str(err.value)
