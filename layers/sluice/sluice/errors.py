"""Domain errors and the closed set of quarantine reasons."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a document was quarantined. A closed set: operators alarm and filter on these codes."""

    EMPTY = "empty"
    NO_TEXT = "no_text"
    UNSUPPORTED = "unsupported"
    TYPE_MISMATCH = "type_mismatch"
    ENCRYPTED = "encrypted"
    TOO_LARGE = "too_large"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_MANY_CHUNKS = "too_many_chunks"
    DECOMPRESSION_OR_SIZE_LIMIT = "decompression_or_size_limit"
    ZIP_BOMB = "zip_bomb"
    ZIP_TOO_MANY_ENTRIES = "zip_too_many_entries"
    XML_DTD_FORBIDDEN = "xml_dtd_forbidden"
    NESTING_TOO_DEEP = "nesting_too_deep"
    ENCODING_UNKNOWN = "encoding_unknown"
    CSV_MALFORMED = "csv_malformed"
    CSV_FIELD_TOO_LARGE = "csv_field_too_large"
    JSON_TOO_DEEP = "json_too_deep"
    JSON_NUMBER_TOO_LARGE = "json_number_too_large"
    MALFORMED = "malformed"
    METADATA_INVALID = "metadata_invalid"
    METADATA_TOO_LARGE = "metadata_too_large"  # required sidecar fields do not fit a vector's metadata
    ACL_UNRESOLVED = "acl_unresolved"
    TIMEOUT_CPU = "timeout_cpu"
    TIMEOUT_WALL = "timeout_wall"
    MEMORY_LIMIT = "memory_limit"
    WORKER_CRASH = "worker_crash"


class SluiceError(Exception):
    """Base of every domain error."""


class QuarantineError(SluiceError):
    """The document itself is the problem: retrying cannot help. It is recorded and acknowledged."""

    def __init__(self, reason: Reason, detail: str, kind: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.kind = kind  # the document type, when it was recognised before reading failed


class TransientError(SluiceError):
    """A dependency failed in a way a retry may fix (throttling, 5xx, a busy document)."""


class RefusedError(SluiceError):
    """A service refused a request as invalid or forbidden: sent again unchanged, it fails the same
    way. The sinks record the reason against the documents in the request."""


class DocumentBusyError(TransientError):
    """Another worker holds the document's lease."""


class LeaseLostError(TransientError):
    """Our lease expired and another worker took the document over; our result is discarded."""
