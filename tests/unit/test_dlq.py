"""Dead letters and the management API, the pure parts: filters, durations, pacing, the outbox's message,
the token check, paging, the configuration view and its PATCH, and the OpenAPI document against the views."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import SecretStr

from app.api.auth import authorize
from app.api.config_view import HOT, apply, effective, flatten, validated
from app.api.errors import ApiError
from app.api.paging import Page, next_after, page
from app.dlq.outbox import HEADER_SLACK, headers_of, message
from app.settings import load_settings
from models.dlq import (
    DlqFilter,
    FilterError,
    Mode,
    ReplayRequest,
    chunk_size,
    decoded,
    eta_s,
    parse_duration,
    parse_when,
    pause_for,
)

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def test_a_filter_round_trips_through_its_json_form_and_rejects_what_it_cannot_run() -> None:
    f = DlqFilter(ids=(3, 1), table="ks.t", reason="unknown_table", since=NOW, statuses=("pending",))
    assert DlqFilter.from_dict(f.as_dict()) == f
    assert f.as_dict()["since"] == "2026-12-02T12:00:00+00:00"
    with pytest.raises(FilterError, match="status"):
        DlqFilter(statuses=("done",))
    with pytest.raises(FilterError, match="table"):
        DlqFilter(table="nodot")
    with pytest.raises(FilterError, match="colour"):
        DlqFilter.from_dict({"colour": "red"})
    with pytest.raises(FilterError, match="zone"):
        DlqFilter.from_dict({"since": "2026-12-02T12:00:00"})
    with pytest.raises(FilterError, match="since"):
        DlqFilter(since=NOW, until=NOW - dt.timedelta(seconds=1))
    assert DlqFilter().with_default_statuses(("pending", "failed")).statuses == ("pending", "failed")
    assert f.with_default_statuses(("failed",)).statuses == ("pending",)


def test_a_replay_request_needs_what_its_mode_needs() -> None:
    with pytest.raises(FilterError, match="at"):
        ReplayRequest(mode=Mode.SCHEDULED)
    with pytest.raises(FilterError, match="at"):
        ReplayRequest(mode=Mode.IMMEDIATE, at=NOW)
    with pytest.raises(FilterError, match="rate"):
        ReplayRequest(mode=Mode.RATE_LIMITED)
    with pytest.raises(FilterError, match="rate"):
        ReplayRequest(rate=0)
    assert ReplayRequest(mode=Mode.RATE_LIMITED, rate=100).rate == 100


def test_durations_times_pacing_and_eta() -> None:
    assert parse_duration("30d") == dt.timedelta(days=30)
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    with pytest.raises(ValueError, match="30d"):
        parse_duration("30 days")
    assert parse_when("2h", NOW) == NOW - dt.timedelta(hours=2)
    assert parse_when("2026-12-01T00:00:00+00:00", NOW) == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with pytest.raises(FilterError):
        parse_when("yesterday", NOW)
    # 100 records/s in chunks of 10: the 50th record may not be done before 0.5 s
    assert chunk_size(100) == 10
    assert chunk_size(None) == 200
    assert chunk_size(0.5) == 1
    assert pause_for(50, 100, 0.2) == pytest.approx(0.3)
    assert pause_for(50, 100, 0.9) == 0.0
    assert pause_for(50, None, 0.0) == 0.0
    assert eta_s(25, 100, 5.0) == pytest.approx(15.0)
    assert eta_s(0, 100, 5.0) is None


def test_payloads_decode_as_json_text_or_hex() -> None:
    assert decoded(b'{"a": 1}') == {"a": 1}
    assert decoded(b"not json") == "not json"
    assert decoded(b"\xff\x00") == {"hex": "ff00"}
    assert decoded(None) is None


def _row(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": 7,
        "topic": "cdc.ks.t",
        "partition": 0,
        "offset": 41,
        "error_type": "malformed_event",
        "error_message": "x" * 5000,
        "recorded_at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        "key": b"k",
        "value": b"v" * 100,
    }
    return {**row, **overrides}


def test_dead_letter_headers_name_origin_reason_and_time() -> None:
    headers = dict(headers_of(_row()))
    assert headers["cdc.origin.offset"] == b"41"
    assert headers["cdc.error.type"] == b"malformed_event"
    assert len(headers["cdc.error.message"]) == 4000
    assert headers["cdc.recorded_at"] == b"2026-01-02T00:00:00+00:00"
    assert headers["cdc.dlq.id"] == b"7"


def test_an_oversized_dead_letter_is_cut_to_fit_and_says_so() -> None:
    key, value, headers, cut = message(_row(), 20_000)
    assert (key, value, cut) == (b"k", b"v" * 100, False)
    assert "cdc.truncated" not in dict(headers)
    big = _row(value=b"v" * 50_000)
    key, value, headers, cut = message(big, 20_000)
    assert cut
    assert value is not None
    assert len(value) == 20_000 - HEADER_SLACK - 1
    assert dict(headers)["cdc.truncated"] == f"value cut from 50000 to {len(value)} bytes".encode()


TOKEN = SecretStr("s3cret-token-0123456789")


def test_the_token_check_answers_401_without_and_403_with_a_wrong_or_no_configured_token() -> None:
    assert authorize("Bearer s3cret-token-0123456789", TOKEN) is None
    assert authorize("bearer  s3cret-token-0123456789 ", TOKEN) is None
    missing = authorize(None, TOKEN)
    assert missing is not None
    assert missing.status == 401
    basic = authorize("Basic abc", TOKEN)
    assert basic is not None
    assert basic.status == 401
    wrong = authorize("Bearer nope", TOKEN)
    assert wrong is not None
    assert wrong.status == 403
    assert "s3cret" not in wrong.message
    off = authorize("Bearer s3cret-token-0123456789", None)
    assert off is not None
    assert off.status == 403
    assert "CDC_WEB__TOKEN" in off.message


def test_paging() -> None:
    assert page({}) == Page(50, 0)
    assert page({"limit": "2", "after": "10"}) == Page(2, 10)
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"after": "-1"}, {"limit": "x"}):
        with pytest.raises(ApiError) as caught:
            page(bad)
        assert caught.value.status == 400
    assert next_after([11, 12], Page(2, 10)) == 12
    assert next_after([11], Page(2, 10)) is None


def test_the_configuration_view_redacts_every_secret() -> None:
    settings = load_settings(
        postgres={"dsn": "postgresql://cdc:pg-pass-word@db.example:5432/cdc"},
        cassandra={"password": "cass-pass"},
        web={"token": TOKEN.get_secret_value()},
        registry={"url": "http://reg:reg-pass@registry:8081"},
    )
    view = effective(settings)
    text = repr(view)
    for secret in ("pg-pass-word", "cass-pass", TOKEN.get_secret_value(), "reg-pass"):
        assert secret not in text
    assert view["postgres"]["dsn"] == "postgresql://cdc:***@db.example:5432/cdc"
    assert view["web"]["token"] == "***"
    assert view["cassandra"]["password"] == "***"
    assert view["sink"]["batch_size"] == settings.sink.batch_size


def test_patch_changes_only_the_hot_subset_validated_by_the_settings_model() -> None:
    settings = load_settings()
    assert flatten({"sink": {"batch_size": 5}, "log_level": "DEBUG"}) == {
        "sink.batch_size": 5,
        "log_level": "DEBUG",
    }
    changes = validated(settings, {"sink": {"batch_size": 500}, "dlq.replay_rate": 50, "log_level": "DEBUG"})
    assert changes == {"sink.batch_size": 500, "dlq.replay_rate": 50.0, "log_level": "DEBUG"}
    apply(settings, changes)
    assert (settings.sink.batch_size, settings.dlq.replay_rate, settings.log_level) == (500, 50.0, "DEBUG")
    for body, status, named in (
        ({"kafka": {"bootstrap_servers": "x:1"}}, 422, "kafka.bootstrap_servers"),
        ({"sink": {"batch_size": 0}}, 422, "sink.batch_size"),
        ({"log_level": "LOUD"}, 422, "log_level"),
        ([], 400, "JSON object"),
    ):
        with pytest.raises(ApiError) as caught:
            validated(settings, body)
        assert caught.value.status == status
        assert named in caught.value.message
    assert set(HOT) == {"log_level", "sink.batch_size", "sink.batch_timeout_s", "dlq.replay_rate"}


def test_the_openapi_document_lists_exactly_the_views_the_worker_serves() -> None:
    import importlib
    import pkgutil

    import agents.api
    from app.api.openapi import PATHS, document
    from app.faust_app import app

    for module in pkgutil.iter_modules(agents.api.__path__):
        importlib.import_module(f"agents.api.{module.name}")
    served: dict[str, set[str]] = {}
    for path, view in app.web.views.items():
        methods = {m.lower() for m in view.get_methods()} - {"head"}
        served[path] = methods
    served["/metrics"] = {"get"}  # Faust's Prometheus sensor (a route, not a view)
    documented = {path: set(ops) for path, ops in PATHS.items()}
    assert documented == served
    doc = document("1.2.3")
    assert doc["info"]["version"] == "1.2.3"
    refs = {
        op["responses"][code]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        for ops in PATHS.values()
        for op in ops.values()
        for code in op["responses"]
        if "application/json" in op["responses"][code].get("content", {})
        and "$ref" in op["responses"][code]["content"]["application/json"].get("schema", {})
    }
    assert refs <= set(doc["components"]["schemas"])
