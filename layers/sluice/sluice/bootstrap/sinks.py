"""SyncKnowledgeBaseFunction's and SyncKendraFunction's service: a sink over its index, its queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3ObjectReader
from sluice.adapters.aws.sink_states import DynamoDBSinkStates
from sluice.adapters.aws.sqs import SqsQueue
from sluice.bootstrap import Clients
from sluice.settings import Env
from sluice.sinks import CallCount
from sluice.sinks.diff import DiffSink
from sluice.sinks.kendra import KendraSink
from sluice.sinks.knowledge_base import SYNC_MODES, KnowledgeBaseSink

SINK_KINDS = ("kb", "kendra")  # the sinks' names, as in their recorded states and `sluice redrive --sink`


@dataclass(frozen=True, slots=True)
class SinkFunctionSettings:
    """A sink function: which sink, the registry and the processed files it reads, its own queue,
    and the index it writes to."""

    sink: str
    documents_table: str
    processed_bucket: str
    queue_url: str
    knowledge_base_id: str = ""  # the knowledge-base sink's
    data_source_id: str = ""
    sync_mode: str = "direct"
    kendra_index_id: str = ""  # the Kendra sink's
    kendra_role_arn: str | None = None
    kendra_data_source_id: str | None = None  # a custom data source, for Kendra's sync history
    language_code: str = "en"
    requests_per_second: float = 2.0
    first_check_seconds: int = 20  # status checks follow after 20 s, 40 s, 80 s … (the local stack: 1 s)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SinkFunctionSettings:
        e = Env(env)
        sink = e.choice("SINK", SINK_KINDS)
        common = {
            "sink": sink,
            "documents_table": e.required("DOCUMENTS_TABLE"),
            "processed_bucket": e.required("PROCESSED_BUCKET"),
            "queue_url": e.required("SINK_QUEUE_URL"),
            "requests_per_second": float(e.integer("SINK_REQUESTS_PER_SECOND", 2)),
            "first_check_seconds": e.integer("SINK_FIRST_CHECK_SECONDS", 20),
        }
        if sink == "kb":
            specific: dict[str, str | None] = {
                "knowledge_base_id": e.required("KNOWLEDGE_BASE_ID"),
                "data_source_id": e.required("DATA_SOURCE_ID"),
                "sync_mode": e.choice("SYNC_MODE", SYNC_MODES),
            }
        else:
            specific = {
                "kendra_index_id": e.required("KENDRA_INDEX_ID"),
                "kendra_role_arn": e.optional("KENDRA_ROLE_ARN"),
                "kendra_data_source_id": e.optional("KENDRA_DATA_SOURCE_ID"),
                "language_code": e.optional("LANGUAGE_CODE") or "en",
            }
        e.check()
        return cls(**common, **specific)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SinkFunction:
    sink: DiffSink
    queue: SqsQueue
    calls: CallCount = field(default_factory=CallCount)  # the index API's, reported per invocation


def build(env: Mapping[str, str], clients: Clients | None = None) -> SinkFunction:
    settings = SinkFunctionSettings.from_env(env)
    clients = clients or Clients()
    queue = SqsQueue(clients("sqs"), settings.queue_url)
    registry = DynamoDBRegistry(clients("dynamodb"), settings.documents_table)
    states = DynamoDBSinkStates(clients("dynamodb"), settings.documents_table)
    if settings.sink == "kb":
        kb = BedrockKnowledgeBaseApi(
            clients("bedrock-agent"), settings.knowledge_base_id, settings.data_source_id, settings.requests_per_second
        )
        sink: DiffSink = KnowledgeBaseSink(
            api=kb,
            registry=registry,
            states=states,
            processed_bucket=settings.processed_bucket,
            mode=settings.sync_mode,
            queue=queue,
            first_check_seconds=settings.first_check_seconds,
        )
        return SinkFunction(sink, queue, kb.calls)
    kendra = KendraApi(
        clients("kendra"),
        settings.kendra_index_id,
        role_arn=settings.kendra_role_arn,
        per_second=settings.requests_per_second,
        data_source_id=settings.kendra_data_source_id,
    )
    sink = KendraSink(
        api=kendra,
        registry=registry,
        states=states,
        processed=S3ObjectReader(clients("s3")),
        processed_bucket=settings.processed_bucket,
        language_code=settings.language_code,
        first_check_seconds=settings.first_check_seconds,
    )
    return SinkFunction(sink, queue, kendra.calls)
