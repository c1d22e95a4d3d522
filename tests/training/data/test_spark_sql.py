"""The DuckDB-to-Spark transpilation's explicit exceptions, checked on the SQL text (no Spark needed)."""

from __future__ import annotations

from datetime import date

from training.data import features
from training.data.spark_sql import spark_type, to_spark


def test_a_date_minus_a_date_becomes_a_day_difference():
    sql = to_spark("SELECT DATE '2025-03-01' - signup_date AS tenure FROM users")
    assert "DATEDIFF(DAY, `users`.`signup_date`, CAST('2025-03-01' AS DATE))" in sql


def test_a_date_minus_an_interval_stays_date_arithmetic():
    sql = to_spark("SELECT user_id FROM daily_activity WHERE activity_date >= DATE '2025-03-01' - INTERVAL 7 DAY")
    assert "- INTERVAL '7' DAY" in sql and "DATEDIFF" not in sql


def test_decimal_literals_become_doubles_and_integers_stay():
    sql = to_spark("SELECT launches / (pv_loans + 1.0) AS a, launches + 1 AS b FROM daily_activity")
    assert "CAST(1.0 AS DOUBLE)" in sql and "+ 1 AS" in sql


def test_every_query_of_the_snapshot_transpiles():
    as_of = date(2025, 6, 1)
    edges = [sql.format(as_of=features.date_literal(as_of)) for sql in features.EDGES_SQL]
    for sql in (features.feature_sql(as_of), *edges, features.label_sql(as_of, 30, date(2025, 9, 1)),
                features.response_sql(as_of, 30)):
        out = to_spark(sql, "VARCHAR")
        assert out.startswith(("WITH", "SELECT")) and " - CAST(" not in out.replace("- INTERVAL", "")


def test_contract_types_in_sparks_names():
    assert [spark_type(t) for t in ("VARCHAR", "SMALLINT", "DATE", "BOOLEAN")] == ["STRING", "SMALLINT", "DATE", "BOOLEAN"]
