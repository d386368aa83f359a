"""The answers of a faulty AWS, as each service gives them: throttling and server errors (status,
code and message as the service sends them), over HTTP for the services moto serves (S3's XML, the
JSON protocols' bodies and headers) and as parsed bodies for the emulated ones; and 200 answers in
which every entry failed (PutEvents, DeleteObjects, Kendra's batch calls).

botocore parses these as it parses AWS's own, so its retry handler sees what it would see in AWS.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSResponse

# (status, code, message) of each service's throttling and server errors, as the service sends them.
ERRORS: dict[str, dict[str, list[tuple[int, str, str]]]] = {
    "s3": {
        "throttle": [(503, "SlowDown", "Please reduce your request rate.")],
        "5xx": [
            (500, "InternalError", "We encountered an internal error. Please try again."),
            (503, "ServiceUnavailable", "Service is unable to handle request."),
        ],
    },
    "dynamodb": {
        "throttle": [
            (
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            ),
            (400, "ThrottlingException", "Throughput exceeds the current capacity of your table or index."),
        ],
        "5xx": [(500, "InternalServerError", "Internal server error")],
    },
    "events": {
        "throttle": [(400, "ThrottlingException", "Rate exceeded")],
        "5xx": [(500, "InternalException", "An internal error occurred.")],
    },
    "sqs": {
        "throttle": [(400, "RequestThrottled", "The request was denied due to request throttling.")],
        "5xx": [(500, "InternalError", "We encountered an internal error. Please try again.")],
    },
    "bedrock-agent": {
        "throttle": [
            (429, "ThrottlingException", "Rate exceeded"),
            (429, "ThrottlingException", "Too many requests, please wait before trying again."),
            (400, "ServiceQuotaExceededException", "Request rate exceeds the quota for this account."),
        ],
        "5xx": [(500, "InternalServerException", "Internal server error")],
    },
    "kendra": {
        "throttle": [(400, "ThrottlingException", "Rate exceeded")],
        "5xx": [(500, "InternalServerException", "Internal server error")],
    },
}
JSON_TYPE_PREFIX = {"dynamodb": "com.amazonaws.dynamodb.v20120810#", "sqs": "com.amazonaws.sqs#"}
JSON_CONTENT_TYPE = {"dynamodb": "1.0", "sqs": "1.0", "events": "1.1", "kendra": "1.1"}


class _Raw:
    """What AWSResponse reads a body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> list[bytes]:
        return [self._body]


def http_error_answer(service: str, status: int, code: str, message: str, request: Any) -> AWSResponse:
    """The error as the service sends it over HTTP, for botocore to parse: S3's XML, the others' JSON."""
    request_id = uuid.uuid4().hex.upper()[:16]
    if service == "s3":
        headers = {"x-amz-request-id": request_id, "content-type": "application/xml"}
        body = b"" if request.method == "HEAD" else _s3_error(code, message, request_id)
    else:
        headers = {
            "x-amzn-RequestId": request_id,
            "content-type": f"application/x-amz-json-{JSON_CONTENT_TYPE[service]}",
        }
        if service == "sqs":  # SQS's JSON protocol carries the query API's error code too
            headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
        body = json.dumps({"__type": JSON_TYPE_PREFIX.get(service, "") + code, "message": message}).encode()
    headers["content-length"] = str(len(body))
    return AWSResponse(request.url, status, headers, _Raw(body))


def _s3_error(code: str, message: str, request_id: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>{request_id}</RequestId><HostId>{uuid.uuid4().hex}</HostId></Error>"
    ).encode()


def dynamodb_table(request: Any) -> str:
    """The table a DynamoDB request names, without the stack's prefix (``DocumentsTable``)."""
    try:
        name = str(json.loads(_body(request)).get("TableName", ""))
    except ValueError:
        return ""
    return name.rsplit("-", 1)[-1]


def _body(request: Any) -> bytes:
    body = request.body
    if hasattr(body, "read"):
        data = body.read()
        body.seek(0)
        return bytes(data)
    return body.encode() if isinstance(body, str) else bytes(body or b"")


def http_entries_answer(service: str, request: Any) -> AWSResponse:
    """A 200 answer in which every entry failed (and nothing was done): PutEvents' or DeleteObjects'."""
    if service == "events":  # PutEvents
        entries = json.loads(_body(request)).get("Entries", [])
        failed = [{"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Service Failure"} for _ in entries]
        body = json.dumps({"FailedEntryCount": len(failed), "Entries": failed}).encode()
        headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-RequestId": uuid.uuid4().hex}
    else:  # S3 DeleteObjects
        keys = [k.text or "" for k in ElementTree.fromstring(_body(request)).iter() if k.tag.endswith("Key")]
        errors = "".join(
            f"<Error><Key>{escape(k)}</Key><Code>InternalError</Code>"
            "<Message>We encountered an internal error. Please try again.</Message></Error>"
            for k in keys
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{errors}</DeleteResult>'
        ).encode()
        headers = {"content-type": "application/xml", "x-amz-request-id": uuid.uuid4().hex[:16].upper()}
    headers["content-length"] = str(len(body))
    return AWSResponse(request.url, 200, headers, _Raw(body))


def emulated_error_answer(url: str, status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    """The error as an emulated service's parsed answer (what a ``before-call`` handler returns)."""
    body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": _metadata(status)}
    return AWSResponse(url, status, {}, None), body


def emulated_entries_answer(url: str, params: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    """Kendra's BatchPutDocument or BatchDeleteDocument answered 200 with every document failed."""
    ids = [d["Id"] for d in params.get("Documents", [])] or list(params.get("DocumentIdList", []))
    failed = [{"Id": i, "ErrorCode": "InternalError", "ErrorMessage": "Internal server error"} for i in ids]
    return AWSResponse(url, 200, {}, None), {"FailedDocuments": failed, "ResponseMetadata": _metadata(200)}


def _metadata(status: int) -> dict[str, Any]:
    return {"HTTPStatusCode": status, "RequestId": uuid.uuid4().hex, "HTTPHeaders": {}}
