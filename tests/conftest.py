"""Shared fixtures. Every file a test uses is created by the test (see support.pdfwriter)."""

from __future__ import annotations

import os

import pytest

# No test talks to real AWS: credentials are fake and the region fixed, before boto3 is imported.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def clock() -> list[float]:
    """A controllable clock: tests advance ``clock[0]``."""
    return [1_800_000_000.0]
