"""The management API's OpenAPI 3.1 document (pure data). A test checks it against the registered views
and validates real responses against its schemas."""

from __future__ import annotations

from typing import Any

from models.dlq import JOB_STATUSES, STATUSES, Mode

_OBJ = "object"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str | list[str]) -> dict[str, Any]:
    kinds = kind if isinstance(kind, list) else [kind]
    return {"type": [*kinds, "null"]}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": _OBJ,
        "required": ["error"],
        "properties": {
            "error": {
                "type": _OBJ,
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Health": {
        "type": _OBJ,
        "required": ["status", "components"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "components": {
                "type": _OBJ,
                "additionalProperties": {
                    "type": _OBJ,
                    "required": ["status", "detail", "since", "retries"],
                    "properties": {
                        "status": {"enum": ["up", "down", "unknown", "warn"]},
                        "detail": {"type": "string"},
                        "since": {"type": "number"},
                        "retries": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Ready": {
        "type": _OBJ,
        "required": ["ready", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {"type": _OBJ, "additionalProperties": {"type": "boolean"}},
        },
    },
    "DlqRecordSummary": {
        "type": _OBJ,
        "required": [
            "id",
            "topic",
            "partition",
            "offset",
            "error_type",
            "status",
            "retry_count",
            "recorded_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "topic": {"type": "string"},
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "error_type": {"type": "string"},
            "error_message": {"type": "string"},
            "status": {"enum": list(STATUSES)},
            "retry_count": {"type": "integer"},
            "last_error": _nullable("string"),
            "resolution_note": _nullable("string"),
            "replay_id": _nullable("integer"),
            "recorded_at": {"type": "string"},
            "published_at": _nullable("string"),
            "replayed_at": _nullable("string"),
            "truncated": {"type": "boolean"},
        },
    },
    "DlqRecord": {
        "allOf": [
            _ref("DlqRecordSummary"),
            {
                "type": _OBJ,
                "required": ["key", "value", "history"],
                "properties": {
                    "key": {},
                    "value": {},
                    "headers": {"type": _OBJ},
                    "history": {"type": "array"},
                },
            },
        ]
    },
    "DlqPage": {
        "type": _OBJ,
        "required": ["records", "total", "next_after"],
        "properties": {
            "records": {"type": "array", "items": _ref("DlqRecordSummary")},
            "total": {"type": "integer"},
            "next_after": _nullable("integer"),
        },
    },
    "ReplayRequest": {
        "type": _OBJ,
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": [m.value for m in Mode]},
            "rate": {"type": "number", "exclusiveMinimum": 0},
            "at": {"type": "string", "description": "scheduled: ISO-8601 time with zone"},
            "filter": {
                "type": _OBJ,
                "properties": {
                    "ids": {"type": "array", "items": {"type": "integer"}},
                    "table": {"type": "string"},
                    "reason": {"type": "string"},
                    "since": {"type": "string"},
                    "until": {"type": "string"},
                    "statuses": {"type": "array", "items": {"enum": list(STATUSES)}},
                },
            },
        },
    },
    "ReplayAccepted": {
        "type": _OBJ,
        "required": ["replay_id", "status"],
        "properties": {"replay_id": {"type": "integer"}, "status": {"enum": list(JOB_STATUSES)}},
    },
    "Replay": {
        "type": _OBJ,
        "required": ["id", "filter", "mode", "status", "matched", "replayed", "failed", "scheduled_at"],
        "properties": {
            "id": {"type": "integer"},
            "filter": {"type": _OBJ},
            "mode": {"enum": [m.value for m in Mode]},
            "rate": _nullable("number"),
            "status": {"enum": list(JOB_STATUSES)},
            "matched": {"type": "integer"},
            "replayed": {"type": "integer"},
            "failed": {"type": "integer"},
            "scheduled_at": {"type": "string"},
            "started_at": _nullable("string"),
            "finished_at": _nullable("string"),
            "error": _nullable("string"),
        },
    },
    "Resolve": {"type": _OBJ, "properties": {"note": {"type": "string"}}, "additionalProperties": False},
    "Resolved": {
        "type": _OBJ,
        "required": ["id", "status"],
        "properties": {"id": {"type": "integer"}, "status": {"enum": ["resolved", "ignored"]}},
    },
    "Config": {"type": _OBJ, "required": ["app_id", "kafka", "postgres", "web", "sink", "dlq"]},
    "ConfigPatched": {
        "type": _OBJ,
        "required": ["changed", "hot_reloadable"],
        "properties": {
            "changed": {"type": _OBJ},
            "hot_reloadable": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Progress": {
        "type": _OBJ,
        "required": ["partitions", "tables"],
        "properties": {
            "partitions": {"type": _OBJ, "additionalProperties": {"type": _OBJ}},
            "tables": {"type": _OBJ, "additionalProperties": {"type": _OBJ}},
            "reconciliation": {"type": _OBJ, "additionalProperties": {"type": _OBJ}},
        },
    },
    "ReconcileTrigger": {
        "type": _OBJ,
        "additionalProperties": False,
        "properties": {
            "tables": {"type": "array", "items": {"type": "string"}},
            "strategy": {"enum": ["CHECKSUM", "ROW_COUNT", "SAMPLE"]},
            "repair": {"type": "boolean"},
            "ranges": {"type": "integer", "minimum": 1},
            "row_threshold": {"type": "integer", "minimum": 1},
            "sample_size": {"type": "integer", "minimum": 1},
        },
    },
    "ReconcileAccepted": {
        "type": _OBJ,
        "required": ["job_id", "status"],
        "properties": {"job_id": {"type": "integer"}, "status": {"enum": ["running"]}},
    },
    "ReconcileJob": {
        "type": _OBJ,
        "required": [
            "id",
            "job_type",
            "strategy",
            "tables",
            "status",
            "started_at",
            "mismatches",
            "drift_percentage",
        ],
        "properties": {
            "id": {"type": "integer"},
            "job_type": {"enum": ["manual", "scheduled"]},
            "owner": {"type": "string"},
            "strategy": {"enum": ["CHECKSUM", "ROW_COUNT", "SAMPLE", "TIMESTAMP_RANGE"]},
            "tables": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": ["running", "done", "failed"]},
            "started_at": {"type": "string"},
            "finished_at": _nullable("string"),
            "cassandra_rows": {"type": "integer"},
            "postgres_rows": {"type": "integer"},
            "mismatches": {"type": "integer"},
            "in_flight": {"type": "integer"},
            "drift_percentage": {"type": "number"},
            "errors": {"type": "array"},
            "alert_fired": {"type": "boolean"},
            "report": {"type": _OBJ},
        },
    },
    "ReconcileJobs": {
        "type": _OBJ,
        "required": ["jobs", "next_after"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("ReconcileJob")},
            "next_after": _nullable("integer"),
        },
    },
    "BackfillRequest": {
        "type": _OBJ,
        "additionalProperties": False,
        "required": ["tables"],
        "properties": {
            "tables": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "parallel": {"type": "integer", "minimum": 1, "maximum": 64},
            "rate": {"type": "number", "exclusiveMinimum": 0},
            "ranges": {"type": "integer", "minimum": 1},
            "page_size": {"type": "integer", "minimum": 10},
            "batch_rows": {"type": "integer", "minimum": 1},
            "consistency": {"enum": ["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"]},
        },
    },
    "BackfillAccepted": {
        "type": _OBJ,
        "required": ["job_id", "status"],
        "properties": {"job_id": {"type": "integer"}, "status": {"enum": ["running"]}},
    },
    "BackfillJob": {
        "type": _OBJ,
        "required": ["id", "tables", "status", "options", "owner", "started_at", "rows", "errors"],
        "properties": {
            "id": {"type": "integer"},
            "tables": {"type": "array", "items": {"type": "string"}},
            "status": {"enum": ["running", "done", "failed"]},
            "options": {"type": _OBJ},
            "owner": {"type": "string"},
            "started_at": {"type": "string"},
            "heartbeat_at": _nullable("string"),
            "finished_at": _nullable("string"),
            "rows": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "report": {"type": _OBJ},
            "progress": {
                "type": "array",
                "items": {
                    "type": _OBJ,
                    "required": ["table", "ranges", "ranges_done", "ranges_failed", "rows", "batches"],
                    "properties": {
                        "table": {"type": "string"},
                        "ranges": {"type": "integer"},
                        "ranges_done": {"type": "integer"},
                        "ranges_failed": {"type": "integer"},
                        "rows": {"type": "integer"},
                        "batches": {"type": "integer"},
                    },
                },
            },
        },
    },
    "BackfillJobs": {
        "type": _OBJ,
        "required": ["jobs", "next_after"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("BackfillJob")},
            "next_after": _nullable("integer"),
        },
    },
    "Mismatch": {
        "type": _OBJ,
        "required": [
            "id",
            "job_id",
            "keyspace",
            "table",
            "primary_key",
            "mismatch_type",
            "resolution_status",
        ],
        "properties": {
            "id": {"type": "integer"},
            "job_id": {"type": "integer"},
            "keyspace": {"type": "string"},
            "table": {"type": "string"},
            "primary_key": {"type": "array"},
            "mismatch_type": {"enum": ["MISSING_IN_POSTGRES", "MISSING_IN_CASSANDRA", "DATA_MISMATCH"]},
            "columns": {"type": "array", "items": {"type": "string"}},
            "cassandra_data": _nullable("object"),
            "postgres_data": _nullable("object"),
            "cassandra_checksum": _nullable("string"),
            "postgres_checksum": _nullable("string"),
            "resolution_status": {"enum": ["PENDING", "AUTO_RESOLVED", "MANUAL_RESOLVED", "IGNORED"]},
            "detected_at": {"type": "string"},
            "resolved_at": _nullable("string"),
            "resolution_note": _nullable("string"),
        },
    },
    "Mismatches": {
        "type": _OBJ,
        "required": ["mismatches", "next_after"],
        "properties": {
            "mismatches": {"type": "array", "items": _ref("Mismatch")},
            "next_after": _nullable("integer"),
        },
    },
    "MismatchResolve": {
        "type": _OBJ,
        "additionalProperties": False,
        "properties": {"status": {"enum": ["MANUAL_RESOLVED", "IGNORED"]}, "note": {"type": "string"}},
    },
    "SchemaVersions": {
        "type": _OBJ,
        "required": ["table", "versions"],
        "properties": {"table": {"type": "string"}, "versions": {"type": "array"}},
    },
}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _op(
    summary: str,
    ok: str,
    codes: dict[int, str] | None = None,
    *,
    auth: bool = False,
    body: str | None = None,
    status: int = 200,
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): {"description": "OK", **_json(ok)}}
    for code, text in (codes or {}).items():
        # "description:Schema" names the body's schema when it is not the error body
        description, _, schema = text.partition(":")
        responses[str(code)] = {"description": description, **_json(schema or "Error")}
    if auth:
        responses["401"] = {"description": "no bearer token", **_json("Error")}
        responses["403"] = {"description": "wrong token, or no token configured", **_json("Error")}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if auth:
        op["security"] = [{"bearer": []}]
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}},
    {"name": "reason", "in": "query", "schema": {"type": "string"}},
    {"name": "table", "in": "query", "schema": {"type": "string"}},
]

PATHS: dict[str, dict[str, Any]] = {
    "/health": {
        "get": _op(
            "Liveness: every dependency's status (503 while one is down)", "Health", {503: "degraded:Health"}
        )
    },
    "/ready": {
        "get": _op(
            "Readiness: PostgreSQL, Kafka, Cassandra reachable, partitions assigned",
            "Ready",
            {503: "not ready:Ready"},
        )
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
            },
        }
    },
    "/progress": {"get": _op("Per-partition progress and per-table counters (RocksDB tables)", "Progress")},
    "/config": {
        "get": _op("Effective settings, secrets redacted", "Config", auth=True),
        "patch": _op(
            "Change hot-reloadable settings",
            "ConfigPatched",
            {400: "bad body", 422: "not allowed or invalid"},
            auth=True,
            body="Config",
        ),
    },
    "/schemas/{name}": {
        "get": {
            **_op(
                "Recorded schema versions of keyspace.table",
                "SchemaVersions",
                {400: "bad name", 404: "none", 503: "not started"},
            ),
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        }
    },
    "/dlq/records": {
        "get": {
            **_op(
                "Dead letters (no payloads), paged",
                "DlqPage",
                {400: "bad query", 503: "not connected"},
                auth=True,
            ),
            "parameters": _PAGE,
        }
    },
    "/dlq/records/{id}": {
        "get": {
            **_op(
                "One dead letter with its payload and history",
                "DlqRecord",
                {400: "id is not an integer", 404: "no such record", 503: "not connected"},
                auth=True,
            ),
            "parameters": [_ID],
        }
    },
    "/dlq/records/{id}/resolve": {
        "post": {
            **_op(
                "Mark a dead letter resolved",
                "Resolved",
                {400: "id is not an integer", 404: "no such record", 503: "not connected"},
                auth=True,
                body="Resolve",
            ),
            "parameters": [_ID],
        }
    },
    "/dlq/records/{id}/ignore": {
        "post": {
            **_op(
                "Mark a dead letter ignored",
                "Resolved",
                {400: "id is not an integer", 404: "no such record", 503: "not connected"},
                auth=True,
                body="Resolve",
            ),
            "parameters": [_ID],
        }
    },
    "/dlq/replay": {
        "post": _op(
            "Start (or schedule) a replay",
            "ReplayAccepted",
            {400: "bad request", 503: "not connected"},
            auth=True,
            body="ReplayRequest",
            status=202,
        )
    },
    "/dlq/replay/{id}": {
        "get": {
            **_op(
                "A replay's status and counts",
                "Replay",
                {400: "id is not an integer", 404: "no such replay", 503: "not connected"},
                auth=True,
            ),
            "parameters": [_ID],
        }
    },
    "/reconciliation/trigger": {
        "post": _op(
            "Start a reconciliation job",
            "ReconcileAccepted",
            {400: "bad request", 429: "3 jobs running", 503: "not connected"},
            auth=True,
            body="ReconcileTrigger",
            status=202,
        )
    },
    "/reconciliation/jobs": {
        "get": {
            **_op(
                "Reconciliation jobs, paged",
                "ReconcileJobs",
                {400: "bad query", 503: "not connected"},
                auth=True,
            ),
            "parameters": [
                _PAGE[0],
                _PAGE[1],
                *(
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("table", "status", "from", "to")
                ),
            ],
        }
    },
    "/reconciliation/jobs/{id}": {
        "get": {
            **_op(
                "One reconciliation job with its report",
                "ReconcileJob",
                {400: "id is not an integer", 404: "no such job", 503: "not connected"},
                auth=True,
            ),
            "parameters": [_ID],
        }
    },
    "/reconciliation/mismatches": {
        "get": {
            **_op("Mismatches, paged", "Mismatches", {400: "bad query", 503: "not connected"}, auth=True),
            "parameters": [
                _PAGE[0],
                _PAGE[1],
                *(
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("job_id", "table", "type", "status")
                ),
            ],
        }
    },
    "/reconciliation/mismatches/{id}/resolve": {
        "post": {
            **_op(
                "Close a mismatch by hand",
                "Mismatch",
                {400: "bad status or id", 404: "no such mismatch", 503: "not connected"},
                auth=True,
                body="MismatchResolve",
            ),
            "parameters": [_ID],
        }
    },
    "/backfill": {
        "post": _op(
            "Start a backfill job (runs on this worker)",
            "BackfillAccepted",
            {400: "bad request", 429: "a backfill job is running here", 503: "not connected"},
            auth=True,
            body="BackfillRequest",
            status=202,
        ),
        "get": {
            **_op(
                "Backfill jobs, paged", "BackfillJobs", {400: "bad query", 503: "not connected"}, auth=True
            ),
            "parameters": [
                _PAGE[0],
                _PAGE[1],
                *({"name": n, "in": "query", "schema": {"type": "string"}} for n in ("table", "status")),
            ],
        },
    },
    "/backfill/{id}": {
        "get": {
            **_op(
                "One backfill job with each table's progress",
                "BackfillJob",
                {400: "id is not an integer", 404: "no such job", 503: "not connected"},
                auth=True,
            ),
            "parameters": [_ID],
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": {"description": "OK", "content": {"application/json": {}}}},
        }
    },
}


def document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "cass-cdc-pg management API", "version": version},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
