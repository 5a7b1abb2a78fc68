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


LIBPQ_DSN = "host=h password=hunter2 user=u"


@pytest.mark.parametrize(
    "text",
    [
        LIBPQ_DSN,
        "host=h port=5432 password='hunter2 with spaces' user=u",
        "host=h PASSWORD = hunter2 user=u",
        "host=h passwd=hunter2",
        f"connection failed: invalid connection option in {LIBPQ_DSN!r}",
    ],
)
def test_libpq_key_value_passwords_are_redacted(text: str) -> None:
    redacted = redact_text(text)
    assert "hunter2" not in redacted
    assert REDACTED in redacted
    assert "host=h" in redacted  # only the password goes


def test_libpq_password_in_a_message_and_an_exception_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg
    import structlog

    from app.logging import configure_logging

    error = psycopg.OperationalError(
        f'connection to server failed (conninfo "{LIBPQ_DSN}"): Connection refused'
    )
    event = redact_secrets(None, "warning", {"event": "retrying", "error": str(error), "cause": error})
    assert "hunter2" not in repr(event)

    configure_logging("INFO", "json")
    try:
        log = structlog.get_logger("t")
        log.warning("transient failure, retrying", error=str(error), conninfo=LIBPQ_DSN)
        try:
            raise error
        except psycopg.OperationalError:
            log.exception("unexpected error applying a batch")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "unexpected error applying a batch" in err
    assert "Connection refused" in err
    assert "hunter2" not in err
