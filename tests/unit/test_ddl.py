"""app.sink.ddl: mirror DDL quotes every identifier."""

from __future__ import annotations

from psycopg import sql

from app.sink import ddl
from tests.unit.test_state_codec import SPEC


def test_ddl_quotes_every_identifier() -> None:
    text = " ".join(s.as_string(None) for s in ddl.mirror_ddl(SPEC))
    assert '"ks"."we""ird"' in text
    assert '"ks"."_cdc_we""ird_dead"' in text
    assert 'PRIMARY KEY ("p", "c")' in text
    assert isinstance(ddl.ident("x"), sql.Identifier)
