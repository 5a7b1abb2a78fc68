"""TLS and authentication settings of the three clients: contexts, Kafka arguments, PostgreSQL options."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app import tls
from app.kafka_auth import client_kwargs, faust_credentials
from app.pg_connection import connect_kwargs
from app.settings import ConfigError, KafkaSettings, Settings, load_settings


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdc-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_contexts_verify_by_default_with_tls_1_2_at_least(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    full = tls.context(tls.TlsSettings(ca_file=cert, cert_file=cert, key_file=key))
    assert full.verify_mode is ssl.CERT_REQUIRED
    assert full.check_hostname
    assert full.minimum_version is ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in full.get_ca_certs()] == [((("commonName", "cdc-test"),),)]
    chain_only = tls.context(tls.TlsSettings(ca_file=cert, verify="ca", min_version="TLSv1.3"))
    assert chain_only.verify_mode is ssl.CERT_REQUIRED
    assert not chain_only.check_hostname
    assert chain_only.minimum_version is ssl.TLSVersion.TLSv1_3
    assert tls.context(tls.TlsSettings(verify="none")).verify_mode is ssl.CERT_NONE
    with pytest.raises(ValueError, match=r"key_file needs tls\.cert_file"):
        tls.TlsSettings(key_file=key)


def test_kafka_security_protocols_become_client_arguments_and_faust_credentials(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    assert client_kwargs(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None

    ssl_only = KafkaSettings(security_protocol="SSL", tls={"ca_file": cert})
    kwargs = client_kwargs(ssl_only)
    assert kwargs["security_protocol"] == "SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert isinstance(faust_credentials(ssl_only), faust.SSLCredentials)

    scram = KafkaSettings(
        security_protocol="SASL_SSL", sasl_username="cdc", sasl_password="s3cret", tls={"ca_file": cert}
    )
    kwargs = client_kwargs(scram)
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "cdc",
        "s3cret",
    )
    credentials = faust_credentials(scram)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    plain = faust_credentials(
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p"
        )
    )
    assert isinstance(plain, faust.SASLCredentials)
    assert plain.protocol.value == "SASL_PLAINTEXT"


def test_sasl_without_credentials_fails_naming_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(
        ConfigError, match=r"kafka\.sasl_username and kafka\.sasl_password: needed by SASL_SSL"
    ):
        load_settings()


def test_postgres_connections_get_credentials_role_and_tls_options(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = Settings(
        postgres={
            "user": "writer",
            "password": "pw",
            "role": "cdc writer",
            "sslmode": "verify-full",
            "sslrootcert": cert,
            "sslcert": cert,
            "sslkey": key,
        }
    )
    assert connect_kwargs(settings, "-c statement_timeout=5") == {
        "user": "writer",
        "password": "pw",
        "options": "-c role=cdc\\ writer -c statement_timeout=5",
        "sslmode": "verify-full",
        "sslrootcert": str(cert),
        "sslcert": str(cert),
        "sslkey": str(key),
        "ssl_min_protocol_version": "TLSv1.2",
    }
    assert connect_kwargs(Settings()) == {}  # the DSN alone
