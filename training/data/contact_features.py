"""The contact features: per channel and send window, what the contacts table says of a user as of a date.

Generated, one set of aggregates per channel and window, into FEATURE_SQL's `cont` CTE and its outer
SELECT (`training.data.features`), in the ANSI subset both engines run.
"""

from __future__ import annotations

from scoring.arms import CONTACT_CHANNELS, SEND_WINDOWS


def _contact_sql() -> tuple[str, str]:
    """The contacts CTE's aggregates and the outer SELECT's columns, one set per channel and window."""
    aggregates, columns = [], []
    for c in CONTACT_CHANNELS:
        for what, opened in (("contacts", ""), ("opens", " AND opened")):
            for days in (7, 30):
                name = f"{what}_{c}_{days}"
                aggregates.append(f"sum(CASE WHEN channel = '{c}'{opened} AND contact_time >= {{as_of}} - INTERVAL "
                                  f"{days} DAY THEN 1 ELSE 0 END) AS {name}")
                columns.append(f"coalesce(cont.{name}, 0) AS {name}")
    groups = [("channel", c) for c in CONTACT_CHANNELS] + [("send_window", w) for w in SEND_WINDOWS]
    for column, value in groups:
        aggregates.append(f"{{as_of}} - max(CASE WHEN {column} = '{value}' AND opened THEN contact_date END) "
                          f"AS days_since_open_{value}")
        columns.append(f"cont.days_since_open_{value}")
    for column, value in groups:
        aggregates.append(f"sum(CASE WHEN {column} = '{value}' AND opened THEN 1 ELSE 0 END) / "
                          f"(sum(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END) + 1.0) AS open_rate_{value}")
        columns.append(f"cont.open_rate_{value}")
    indent = " " * 8
    return ",\n".join(indent + a for a in aggregates), ",\n".join("    " + c for c in columns) + ","


CONTACT_AGGREGATES, CONTACT_COLUMNS = _contact_sql()
