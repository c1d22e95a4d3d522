"""The feature SQL, written for DuckDB, as Spark SQL: sqlglot transpiles it, with two explicit exceptions.

sqlglot types every expression from the warehouse contract, then:
- `date - date` is DuckDB's day count (an integer), Spark's an interval: it becomes a day difference;
- decimal literals (`1.0`, `0.0495`) are doubles: DuckDB divides decimals in double precision, while
  Spark keeps decimal arithmetic and rounds its quotients to six places.
Everything else (`INTERVAL n DAY`, CASE inside aggregates, casts, window functions) transpiles as is.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from training.data.schema import TABLES


def contract_schema(user_id_type: str) -> dict[str, dict[str, str]]:
    """Each contract table's columns and DuckDB types, user ids of the warehouse's type."""
    return {t.name: t.sql_types(user_id_type) for t in TABLES.values()}


def _day_difference(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Sub) and all(s.type and s.type.is_type(exp.DataType.Type.DATE) for s in (node.left, node.right)):
        return exp.DateDiff(this=node.left, expression=node.right, unit=exp.var("DAY"))
    return node


def _double_literal(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and node.is_number and "." in node.this:
        return exp.cast(node.copy(), exp.DataType.Type.DOUBLE)
    return node


def spark_type(duckdb_type: str) -> str:
    """A column type of the contract (DuckDB's name) as Spark names it."""
    return exp.DataType.build(duckdb_type, dialect="duckdb").sql("spark")


def to_spark(duckdb_sql: str, user_id_type: str = "BIGINT") -> str:
    """Spark SQL computing what `duckdb_sql` computes over the contract's tables."""
    schema = contract_schema(user_id_type)
    tree = qualify(sqlglot.parse_one(duckdb_sql, read="duckdb"), schema=schema, dialect="duckdb")
    tree = annotate_types(tree, schema=schema, dialect="duckdb")
    return tree.transform(_day_difference).transform(_double_literal).sql("spark")
