"""Connecting to a Temporal cluster or Temporal Cloud: TLS, mTLS and API keys from
settings (the embedded dev server itself speaks plain gRPC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.service import TLSConfig

from aftersales.settings import Settings
from aftersales.temporal import tls_config


def write_cert(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aftersales-worker")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_plain_by_default():
    assert tls_config(Settings.from_env({})) is False


def test_mtls_from_the_environment(tmp_path):
    cert, key = write_cert(tmp_path)
    settings = Settings.from_env({
        "AFTERSALES_TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233",
        "AFTERSALES_TEMPORAL_NAMESPACE": "ns.acct",
        "AFTERSALES_TEMPORAL_TLS_CERT": cert, "AFTERSALES_TEMPORAL_TLS_KEY": key,
        "AFTERSALES_TEMPORAL_TLS_CA": cert})
    config = tls_config(settings)
    assert isinstance(config, TLSConfig)
    assert config.client_cert.startswith(b"-----BEGIN CERTIFICATE-----")
    assert config.client_private_key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert config.server_root_ca_cert == config.client_cert
    assert settings.temporal_namespace == "ns.acct"
    # Child processes of `aftersales dev` get the same settings.
    assert Settings.from_env(settings.to_env()).temporal_tls_cert == cert


def test_server_tls_with_an_api_key():
    settings = Settings.from_env({"AFTERSALES_TEMPORAL_TLS": "true",
                                  "AFTERSALES_TEMPORAL_API_KEY": "key-123"})
    config = tls_config(settings)
    assert isinstance(config, TLSConfig) and config.client_cert is None
    assert settings.temporal_api_key == "key-123"


def test_a_certificate_without_its_key_is_refused(tmp_path):
    cert, _ = write_cert(tmp_path)
    with pytest.raises(ValueError, match="go together"):
        tls_config(Settings.from_env({"AFTERSALES_TEMPORAL_TLS_CERT": cert}))
