"""app.vault: references, lease decisions, settings checks, log-in methods and the credential rotation loop
(Vault replaced by a scripted client here; tests/integration/test_vault.py runs the real OpenBao)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from app.health import health
from app.settings import ConfigError, load_settings
from app.vault import leases
from app.vault.client import VaultClient, VaultRefused, VaultUnavailable, login
from app.vault.config import VaultSettings
from app.vault.database import DatabaseCredentials
from app.vault.refs import BadReference, DbRef, KvRef, parse_reference
from app.vault.resolve import nested, read_references


def vault_status() -> str:
    return health.components["vault"].status


# -- references ------------------------------------------------------------------------------------------
def test_references_parse_and_malformed_ones_are_refused() -> None:
    assert parse_reference("vault:secret/cdc/prod#pg_password") == KvRef("secret", "cdc/prod", "pg_password")
    assert parse_reference("vault-db:cdc-writer") == DbRef("cdc-writer")
    assert parse_reference("plain-password") is None
    assert str(KvRef("secret", "cdc", "k")) == "vault:secret/cdc#k"
    for bad in ("vault:secret#k", "vault:secret/cdc", "vault:/cdc#k", "vault-db:", "vault-db:a/b"):
        with pytest.raises(BadReference):
            parse_reference(bad)


def test_settings_check_references_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_WEB__TOKEN", "vault:secret/cdc#web_token")
    with pytest.raises(ConfigError, match=r"web\.token: a Vault reference needs vault\.addr"):
        load_settings()
    monkeypatch.setenv("CDC_VAULT__ADDR", "http://127.0.0.1:1")
    monkeypatch.setenv("CDC_WEB__TOKEN", "vault:secret#web_token")
    with pytest.raises(ConfigError, match=r"web\.token: vault:MOUNT/PATH#KEY expected"):
        load_settings()
    monkeypatch.setenv("CDC_WEB__TOKEN", "vault-db:cdc-writer")
    with pytest.raises(ConfigError, match=r"web\.token: vault-db: references are for postgres\.password"):
        load_settings()
    monkeypatch.delenv("CDC_WEB__TOKEN")
    monkeypatch.setenv("CDC_VAULT__AUTH", "approle")
    monkeypatch.setenv("CDC_VAULT__ROLE_ID", "r")
    with pytest.raises(ConfigError, match=r"vault\.secret_id: needed by vault\.auth = 'approle'"):
        load_settings()


def test_a_dynamic_reference_is_kept_for_the_lease_and_needs_no_vault_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDC_VAULT__ADDR", "http://127.0.0.1:1")  # nothing listens: nothing is read
    monkeypatch.setenv("CDC_POSTGRES__PASSWORD", "vault-db:cdc-writer")
    settings = load_settings()
    assert settings.postgres.password is not None
    assert settings.postgres.password.get_secret_value() == "vault-db:cdc-writer"


def test_static_references_are_read_and_validated_again() -> None:
    class Kv:
        def __init__(self, data: dict[str, str]) -> None:
            self.data = data
            self.read: list[KvRef] = []

        def read_kv(self, ref: KvRef) -> SecretStr:
            self.read.append(ref)
            return SecretStr(self.data[ref.key])

    from app.settings import Settings

    settings = Settings(
        vault={"addr": "http://vault"},
        web={"token": "vault:secret/cdc#web_token"},
        postgres={"password": "vault-db:writer"},
    )
    kv = Kv({"web_token": "t" * 20})
    values = read_references(settings, settings.vault, kv)  # type: ignore[arg-type]
    assert values == {"web.token": "t" * 20}
    assert kv.read == [KvRef("secret", "cdc", "web_token")]
    assert nested(values, into={"web": {"port": 7000}, "app_id": "x"}) == {
        "web": {"port": 7000, "token": "t" * 20},
        "app_id": "x",
    }


# -- log-in methods --------------------------------------------------------------------------------------
class FakeAuth:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.approle = self._method("approle")
        self.kubernetes = self._method("kubernetes")

    def _method(self, name: str) -> Any:
        calls = self.calls

        class Method:
            def login(self, **kwargs: Any) -> None:
                calls.append((name, kwargs))

        return Method()


class FakeHvac:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs, self.auth, self.token = kwargs, FakeAuth(), None


def test_each_log_in_method_calls_its_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeHvac()
    login(client, VaultSettings(addr="x", token=SecretStr("tok")))  # type: ignore[arg-type]
    assert client.token == "tok"
    assert client.auth.calls == []
    monkeypatch.setenv("VAULT_TOKEN", "from-env")
    login(client, VaultSettings(addr="x"))  # type: ignore[arg-type]
    assert client.token == "from-env"
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(VaultRefused, match=r"vault\.token"):
        login(client, VaultSettings(addr="x"))  # type: ignore[arg-type]

    approle = VaultSettings(addr="x", auth="approle", role_id="rid", secret_id=SecretStr("sid"))
    login(client, approle)  # type: ignore[arg-type]
    assert client.auth.calls[-1] == (
        "approle",
        {"role_id": "rid", "secret_id": "sid", "mount_point": "approle"},
    )

    jwt = tmp_path / "token"
    jwt.write_text("eyJ.service-account.jwt\n")
    kubernetes = VaultSettings(
        addr="x", auth="kubernetes", kubernetes_role="cdc", kubernetes_jwt_file=jwt, auth_mount="k8s-prod"
    )
    login(client, kubernetes)  # type: ignore[arg-type]
    assert client.auth.calls[-1] == (
        "kubernetes",
        {"role": "cdc", "jwt": "eyJ.service-account.jwt", "mount_point": "k8s-prod"},
    )


def test_client_errors_are_typed_and_a_refused_token_logs_in_again() -> None:
    import requests
    from hvac import exceptions

    made: list[FakeHvac] = []

    def factory(**kwargs: Any) -> FakeHvac:
        made.append(FakeHvac(**kwargs))
        return made[-1]

    settings = VaultSettings(addr="http://v", auth="approle", role_id="r", secret_id=SecretStr("s"))
    client = VaultClient(settings, factory)
    attempts = iter([exceptions.Forbidden("permission denied"), "ok"])

    def flaky(c: Any) -> str:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    assert client.call(flaky) == "ok"
    assert len(made) == 2  # logged in again after the refusal
    assert made[0].kwargs == {"url": "http://v", "timeout": 5.0, "verify": True, "namespace": None}

    def down(c: Any) -> None:
        raise requests.ConnectionError("refused")

    with pytest.raises(VaultUnavailable, match="unavailable: ConnectionError"):
        client.call(down)

    def missing(c: Any) -> None:
        raise exceptions.InvalidPath("no secret at secret/data/cdc")

    with pytest.raises(VaultRefused, match="InvalidPath"):
        client.call(missing)


# -- lease decisions -------------------------------------------------------------------------------------
def test_a_lease_is_renewed_at_two_thirds_and_rotated_once_capped() -> None:
    lease = leases.leased("l1", 30, True, now=100.0)
    assert leases.due_at(lease) == pytest.approx(120.0)
    assert not leases.must_rotate(lease)
    full = leases.renewed(lease, 30, now=120.0)
    assert not full.capped
    assert full.expires_at == 150.0
    capped = leases.renewed(full, 12, now=140.0)
    assert capped.capped
    assert leases.must_rotate(capped)
    assert leases.due_at(capped) == 140.0
    assert leases.must_rotate(leases.leased("l2", 30, False, now=0.0))


def test_credentials_are_usable_within_the_grace_period_and_never_past_their_lease() -> None:
    lease = leases.leased("l1", 600, True, now=0.0)
    assert leases.unusable(lease, 10.0, None, grace_s=300) is None
    assert leases.unusable(lease, 200.0, failing_since=10.0, grace_s=300) is None
    reason = leases.unusable(lease, 320.0, failing_since=10.0, grace_s=300)
    assert reason is not None
    assert "past the 300 s grace period" in reason
    expired = leases.unusable(lease, 599.0, failing_since=590.0, grace_s=300)
    assert expired is not None
    assert "lease has expired" in expired


# -- the rotation loop -----------------------------------------------------------------------------------
class ScriptedVault:
    """Leases numbered credentials; renewals grant what ``grants`` says (else what was asked)."""

    def __init__(self) -> None:
        self.issued = 0
        self.grants: list[float] = []
        self.revoked: list[str] = []
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise VaultUnavailable("Vault at http://v unavailable: ConnectTimeout")

    def database_credentials(self, role: str) -> tuple[str, SecretStr, dict[str, Any]]:
        self._up()
        self.issued += 1
        n = self.issued
        return (
            f"user{n}",
            SecretStr(f"pw{n}"),
            {"lease_id": f"lease{n}", "lease_duration": 30, "renewable": True},
        )

    def renew(self, lease_id: str, increment_s: float) -> float:
        self._up()
        return self.grants.pop(0) if self.grants else increment_s

    def revoke(self, lease_id: str) -> None:
        self._up()
        self.revoked.append(lease_id)

    def lookup_self(self) -> None:
        self._up()


def test_rotation_switches_the_pool_and_revokes_the_old_lease_once_no_session_uses_it() -> None:
    now = [0.0]
    vault = ScriptedVault()
    creds = DatabaseCredentials(vault, "writer", grace_s=60, clock=lambda: now[0])  # type: ignore[arg-type]
    sessions = {"user1": 1}
    creds.sessions_of = lambda user: sessions.get(user, 0)
    drained: list[str] = []
    creds.on_rotate.append(lambda: drained.append(creds.current().user))
    assert creds.current().user == "user1"

    now[0] = 5.0
    assert creds.step() == pytest.approx(10.0)  # heartbeat before the renewal at 20 s
    now[0] = 20.0
    creds.step()  # renewed in full
    assert creds.current().user == "user1"
    assert vault.issued == 1
    vault.grants = [8.0]  # the max TTL is near
    now[0] = 40.0
    creds.step()
    assert creds.current().user == "user2"
    assert drained == ["user2"]
    assert vault.revoked == []  # user1 still has a session (a batch finishing its transaction)
    sessions["user1"] = 0
    now[0] = 41.0
    creds.step()
    assert vault.revoked == ["lease1"]
    assert vault_status() == "up"


def test_vault_down_keeps_the_credentials_for_the_grace_period_then_pauses_and_recovers() -> None:
    now = [0.0]
    vault = ScriptedVault()
    creds = DatabaseCredentials(vault, "writer", grace_s=15, clock=lambda: now[0])  # type: ignore[arg-type]
    creds.sessions_of = lambda user: 0
    creds.current()
    vault.down = True
    now[0] = 5.0
    assert creds.step() == 1.0  # retried soon
    assert vault_status() == "warn"
    now[0] = 15.0
    creds.step()
    assert creds.current().user == "user1"  # within the grace period: the cached credentials
    now[0] = 21.0
    creds.step()
    with pytest.raises(VaultUnavailable, match="past the 15 s grace period"):
        creds.current()
    assert vault_status() == "down"
    vault.down = False
    now[0] = 22.0
    creds.step()  # renewal due (20 s) and Vault answers
    assert creds.current().user == "user1"
    assert vault_status() == "up"


def test_a_refused_renewal_rotates_at_once() -> None:
    now = [0.0]
    vault = ScriptedVault()
    creds = DatabaseCredentials(vault, "writer", grace_s=15, clock=lambda: now[0])  # type: ignore[arg-type]
    creds.sessions_of = lambda user: 0
    creds.current()

    def refuse(lease_id: str, increment_s: float) -> float:
        raise VaultRefused("Vault refused: InvalidRequest: lease not found")

    vault.renew = refuse  # type: ignore[method-assign]
    now[0] = 21.0
    creds.step()
    assert creds.current().user == "user2"
