"""ReconcileFunction's service: the reconciliation pass over the stack's stores and indexes."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.adapters.aws.bedrock_agent import BedrockKnowledgeBaseApi
from sluice.adapters.aws.kendra import KendraApi
from sluice.bootstrap import Clients
from sluice.reconcile import Reconciler
from sluice.settings import reconcile_settings


def build(env: Mapping[str, str], clients: Clients | None = None) -> Reconciler:
    settings = reconcile_settings(env)
    clients = clients or Clients()
    kb = kendra = None
    if "kb" in settings.sink_queues:  # GetKnowledgeBaseDocuments shares 5 requests/s with the sink
        kb = BedrockKnowledgeBaseApi(clients("bedrock-agent"), env["KNOWLEDGE_BASE_ID"], env["DATA_SOURCE_ID"], 1.0)
    if "kendra" in settings.sink_queues:
        kendra = KendraApi(clients("kendra"), env["KENDRA_INDEX_ID"], per_second=2)
    return Reconciler(
        settings, s3=clients("s3"), dynamodb=clients("dynamodb"), sqs=clients("sqs"), kb=kb, kendra=kendra
    )
