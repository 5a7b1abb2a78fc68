"""The worker's start-up check of the transform rules against Cassandra's schema (fail fast, naming the key).

The rules' shape is checked when the settings load; whether they fit the tables needs Cassandra: a table or
column named without a wildcard must exist, and every rule must fit its column's CQL type
(:func:`models.transforms.check_rules`). A rule that stops fitting later (a column added to a table a
wildcard rule matches) quarantines that table instead (:mod:`app.sink.registry`).
"""

from __future__ import annotations

from typing import Any

from app.cassandra_schema import table_schemas
from app.cassandra_session import connect
from app.settings import Settings
from models.transforms import TransformPlan, check_rules


def check_transforms(settings: Settings) -> dict[str, TransformPlan]:
    """The compiled plan of every table with rules; raises :class:`models.transforms.TransformConfigError`
    for a rule that does not fit, and the driver's error when Cassandra cannot be reached."""
    rules = settings.transform_rules
    if not rules:
        return {}
    cluster, _ = connect(settings.cassandra)
    try:
        schemas = table_schemas(cluster, {pattern.split(".", 1)[0] for pattern in rules})
    finally:
        cluster.shutdown()
    return check_rules(rules, schemas, settings.hash_key)


def plans_report(plans: dict[str, TransformPlan]) -> dict[str, Any]:
    """``{table: {fingerprint, columns: {column: rule}}}``: what ``cdc transforms check --json`` prints."""
    return {
        table: {"fingerprint": plan.fingerprint, "columns": plan.describe()} for table, plan in plans.items()
    }
