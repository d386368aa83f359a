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
from sluice.settings import SinkFunctionSettings
from sluice.sinks import CallCount
from sluice.sinks.diff import DiffSink
from sluice.sinks.kendra import KendraSink
from sluice.sinks.knowledge_base import KnowledgeBaseSink


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
