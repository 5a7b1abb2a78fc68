"""The metric names the worker exports, and those PromQL expressions select, for the checks of the alert rules
and dashboards."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import app.metrics  # noqa: F401  (registers the pipeline's metrics)

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def names_of(family: str, kind: str) -> set[str]:
    """A family's name and the series names it has once it has samples (a labelled family has none before
    its first child)."""
    return {family, *(family + s for s in SUFFIXES.get(kind, ()))}


def exported() -> set[str]:
    """Every series name of this process's registry (the worker's, Faust's aside)."""
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names |= names_of(metric.name, metric.type)
        names.update(sample.name for sample in metric.samples)
    return names


def scraped(text: str) -> set[str]:
    """Every series name of a /metrics page (the text format)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= names_of(family.name, family.type)
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers followed by a selector, a range or an
    operator, not functions, keywords or label names)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_grouping = re.sub(
        r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels
    )
    words = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_grouping)
    keywords = {"and", "or", "unless", "bool", "offset", "e9", "Inf", "le"}
    return {w for w in words if w not in keywords and not re.fullmatch(r"\d+[smhd]?|\d*e\d+", w)}
