"""app.logging: secrets never reach the log."""

from __future__ import annotations

import pytest

from app.logging import REDACTED, redact_secrets, redact_text


def test_secrets_are_redacted() -> None:
    event = redact_secrets(None, "info", {"dsn": "postgresql://u:pw@h/db", "url": "http://u:pw@h", "n": 1})
    assert event == {"dsn": REDACTED, "url": f"http://u:{REDACTED}@h", "n": 1}
    assert "pw" not in redact_text("kafka://user:pw@host:9092")


def test_configured_logging_redacts_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from app.logging import configure_logging

    configure_logging("INFO", "json")
    try:
        structlog.get_logger("t").info(
            "connecting", dsn="postgresql://u:hunter2@h/db", url="kafka://a:hunter2@b"
        )
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "connecting" in err
    assert "hunter2" not in err
