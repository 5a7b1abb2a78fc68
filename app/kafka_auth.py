"""Kafka security settings as aiokafka's client arguments and as Faust's ``broker_credentials``."""

from __future__ import annotations

from typing import Any

import faust
from faust.types.auth import CredentialsT

from app import tls
from app.settings import KafkaSettings


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """``security_protocol``, ``ssl_context`` and the SASL arguments of an aiokafka client."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = tls.context(kafka.tls)
    if kafka.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_username
        kwargs["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return kwargs


def faust_credentials(kafka: KafkaSettings) -> CredentialsT | None:
    """What Faust's consumer and producer authenticate with (None: plaintext)."""
    protocol = kafka.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = tls.context(kafka.tls) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        assert context is not None
        return faust.SSLCredentials(context)
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    return faust.SASLCredentials(
        username=kafka.sasl_username, password=password, ssl_context=context, mechanism=kafka.sasl_mechanism
    )
