# SPDX-License-Identifier: Apache-2.0
"""A listener's TLS and basic authentication, in the Prometheus exporter-toolkit's terms.

The keys are those of exporter-toolkit's web configuration (``tls_server_config`` and
``basic_auth_users``), written inline per listener: ``http.tls``/``http.basic_auth_users`` for
the main listener, ``http.webhook_tls``/``http.webhook_basic_auth_users`` for the webhook one.
Files are read when the listener starts (a missing file stops the start, naming the key) and
again whenever they change on disk.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictStr, WithJsonSchema, model_validator

from exporter.config.fields import KeyedError, OneOf, OptionalStr, Section
from exporter.settings import CLIENT_AUTH_TYPES, TLS_VERSIONS

__all__ = ["BasicAuthUsers", "TlsSection"]

_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
_VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_UNSUPPORTED_AUTH = {
    "RequestClientCert": "Python's TLS cannot ask for a certificate without verifying it",
    "RequireAnyClientCert": "Python's TLS cannot ask for a certificate without verifying it",
}


def _auth_type(value: Any) -> Any:
    if isinstance(value, str) and value in _UNSUPPORTED_AUTH:
        raise ValueError(f"{value} is not supported ({_UNSUPPORTED_AUTH[value]}); use {' or '.join(_VERIFYING)}")
    return value


class TlsSection(Section):
    cert_file: StrictStr = Field(description="the server certificate (PEM, chain after it), relative to the config")
    key_file: StrictStr = Field(description="the server certificate's private key (PEM)")
    client_ca_file: OptionalStr = Field(
        default=None, description="CA certificates (PEM) that client certificates are verified against"
    )
    client_auth_type: Annotated[
        StrictStr,
        BeforeValidator(_auth_type),
        OneOf(CLIENT_AUTH_TYPES, f"must be one of {', '.join(CLIENT_AUTH_TYPES)}"),
    ] = Field(default="NoClientCert", description="whether clients must present a certificate signed by client_ca_file")
    min_version: Annotated[StrictStr, OneOf(TLS_VERSIONS, f"must be one of {', '.join(TLS_VERSIONS)}")] = Field(
        default="TLS12", description="the oldest TLS version accepted"
    )

    @model_validator(mode="after")
    def _ca_and_auth_type(self) -> TlsSection:
        verifying = self.client_auth_type in _VERIFYING
        if verifying and self.client_ca_file is None:
            raise KeyedError("client_ca_file", f"client_auth_type {self.client_auth_type} needs a client_ca_file")
        if not verifying and self.client_ca_file is not None:
            raise KeyedError("client_auth_type", f"a client_ca_file needs one of {', '.join(_VERIFYING)}")
        if not self.cert_file or not self.key_file:
            raise KeyedError("cert_file" if not self.cert_file else "key_file", "must be a file path")
        return self


def _users(raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ValueError("must map user names to bcrypt hashes")
    for name, hashed in raw.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise KeyedError(str(name), "a user name must be a non-empty string without ':'")
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            raise KeyedError(name, "must be a bcrypt hash ($2b$12$ and 53 characters; htpasswd -nbBC 12 makes one)")
    return dict(raw)


BasicAuthUsers = Annotated[
    dict[str, str],
    BeforeValidator(_users),
    WithJsonSchema(
        {"type": "object", "additionalProperties": {"type": "string", "pattern": r"^\$2[aby]\$[0-9]{2}\$.{53}$"}}
    ),
]
