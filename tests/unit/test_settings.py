"""Function settings come from the environment once, validated, with every problem named."""

from __future__ import annotations

import pytest

from sluice.bootstrap.ingest import IngestFunctionSettings
from sluice.settings import ConfigurationError

BASE = {"PROCESSED_BUCKET": "p", "DOCUMENTS_TABLE": "t", "EVENT_BUS_NAME": "b"}


def test_defaults() -> None:
    s = IngestFunctionSettings.from_env(BASE)
    assert (s.processed_bucket, s.documents_table, s.event_bus_name) == ("p", "t", "b")
    assert s.idempotency_table is None and s.raw_bucket is None
    assert s.ingest.pipeline.chunking.max_tokens == 512


def test_overrides() -> None:
    s = IngestFunctionSettings.from_env(
        {
            **BASE,
            "MAX_TOKENS": "256",
            "OVERLAP_TOKENS": "16",
            "MAX_PAGES": "10",
            "LEASE_SECONDS": "60",
            "IDEMPOTENCY_TABLE": "i",
            "RAW_BUCKET": "r",
        }
    )
    assert s.ingest.pipeline.chunking.max_tokens == 256 and s.ingest.pipeline.chunking.overlap_tokens == 16
    assert s.ingest.pipeline.parse.max_pages == 10 and s.ingest.lease_seconds == 60
    assert (s.idempotency_table, s.raw_bucket) == ("i", "r")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        IngestFunctionSettings.from_env({"MAX_TOKENS": "lots", "OVERLAP_TOKENS": "9999"})
    message = str(info.value)
    for name in ("PROCESSED_BUCKET", "DOCUMENTS_TABLE", "EVENT_BUS_NAME", "MAX_TOKENS"):
        assert name in message


def test_invalid_chunk_settings_are_named() -> None:
    with pytest.raises(ConfigurationError, match="overlap_tokens"):
        IngestFunctionSettings.from_env({**BASE, "MAX_TOKENS": "128", "OVERLAP_TOKENS": "100"})


def test_the_vector_store_decides_the_sidecar_limits() -> None:
    from sluice.pipeline.files import S3_VECTORS

    assert IngestFunctionSettings.from_env(BASE).ingest.vector_limits == S3_VECTORS  # a new knowledge base's store
    assert IngestFunctionSettings.from_env({**BASE, "VECTOR_STORE": "other"}).ingest.vector_limits is None
    with pytest.raises(ConfigurationError, match="VECTOR_STORE must be one of s3-vectors, other"):
        IngestFunctionSettings.from_env({**BASE, "VECTOR_STORE": "opensearch"})
