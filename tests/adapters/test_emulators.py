"""The local stack's Bedrock and Kendra emulators: requests validated against the service models
(botocore's own checks plus the max limits botocore leaves to the service), answers validated
against the output shapes, the services' behaviours that the sinks rely on, and the call log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from sluice.errors import TransientError
from sluice_local import emulators

KB, DS, INDEX = "LOCALKB001", "LOCALDS001", "10ca1000-0000-4000-8000-000000000001"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="processed")
        emulator = emulators.install(tmp_path, s3=s3)
        emulator.create_data_source(KB, DS, "processed", "chunks/")
        emulator.create_index(INDEX, emulators.LOCAL_KENDRA_FIELDS)
        try:
            yield {
                "s3": s3,
                "dir": tmp_path,
                "agent": boto3.client("bedrock-agent"),
                "runtime": boto3.client("bedrock-agent-runtime"),
                "kendra": boto3.client("kendra"),
            }
        finally:
            emulators.uninstall()


def _chunk(s3: Any, key: str, text: str, metadata: dict[str, Any] | None = None) -> str:
    s3.put_object(Bucket="processed", Key=key, Body=text.encode())
    body = json.dumps({"metadataAttributes": metadata or {"source": "s3://raw/a.md"}})
    s3.put_object(Bucket="processed", Key=f"{key}.metadata.json", Body=body.encode())
    return f"s3://processed/{key}"


def _ingest(agent: Any, uris: list[str], token: str = "t" * 40) -> dict[str, Any]:
    return dict(
        agent.ingest_knowledge_base_documents(
            knowledgeBaseId=KB,
            dataSourceId=DS,
            clientToken=token,
            documents=[
                {
                    "content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": u}}},
                    "metadata": {"type": "S3_LOCATION", "s3Location": {"uri": f"{u}.metadata.json"}},
                }
                for u in uris
            ],
        )
    )


def _status(agent: Any, uri: str) -> str:
    details = agent.get_knowledge_base_documents(
        knowledgeBaseId=KB, dataSourceId=DS, documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}]
    )["documentDetails"]
    return str(details[0]["status"])


def test_ingested_chunks_are_indexed_retrievable_and_deletable(world: dict[str, Any]) -> None:
    agent, runtime = world["agent"], world["runtime"]
    uri = _chunk(world["s3"], "chunks/d/1.txt", "Rotate the signing keys every ninety days.")
    assert _ingest(agent, [uri])["documentDetails"][0]["status"] == "STARTING"
    assert _status(agent, uri) == "INDEXED"
    hits = runtime.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "signing keys"})["retrievalResults"]
    assert hits[0]["location"]["s3Location"]["uri"] == uri
    assert hits[0]["metadata"]["source"] == "s3://raw/a.md" and 0 < hits[0]["score"] <= 1
    agent.delete_knowledge_base_documents(
        knowledgeBaseId=KB,
        dataSourceId=DS,
        clientToken="d" * 40,
        documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}],
    )
    assert _status(agent, uri) == "NOT_FOUND"
    assert runtime.retrieve(knowledgeBaseId=KB, retrievalQuery={"text": "signing keys"})["retrievalResults"] == []


def test_requests_are_held_to_the_service_model(world: dict[str, Any]) -> None:
    agent = world["agent"]
    with pytest.raises(ParamValidationError):  # botocore's own validation: a required member missing
        agent.ingest_knowledge_base_documents(knowledgeBaseId=KB, dataSourceId=DS, documents=[{"content": {}}])
    uris = [_chunk(world["s3"], f"chunks/d/{i}.txt", f"chunk {i}") for i in range(11)]
    with pytest.raises(ClientError, match="11 items; the maximum is 10"):  # the limit the service enforces
        _ingest(agent, uris)


def test_documents_outside_the_data_source_and_oversized_sidecars_are_refused(world: dict[str, Any]) -> None:
    agent, s3 = world["agent"], world["s3"]
    s3.create_bucket(Bucket="elsewhere")
    s3.put_object(Bucket="elsewhere", Key="x.txt", Body=b"x")
    with pytest.raises(ClientError, match="must lie in s3://processed/chunks/"):
        _ingest(agent, ["s3://elsewhere/x.txt"])
    uri = _chunk(s3, "chunks/d/big.txt", "text", {"blob": "x" * 11_000})
    _ingest(agent, [uri])
    assert _status(agent, uri) == "METADATA_UPDATE_FAILED"


def test_metadata_a_vector_cannot_keep_is_refused_as_s3_vectors_would(world: dict[str, Any]) -> None:
    agent, s3 = world["agent"], world["s3"]
    fits = _chunk(s3, "chunks/d/fits.txt", "text", {"summary": {"value": {"type": "STRING", "stringValue": "s" * 990}}})
    too_big = _chunk(s3, "chunks/d/big.txt", "text", {"summary": "s" * 1100})
    too_many = _chunk(s3, "chunks/d/keys.txt", "text", {f"k{i}": i for i in range(36)})
    _ingest(agent, [fits, too_big, too_many])
    assert [_status(agent, u) for u in (fits, too_big, too_many)] == ["INDEXED", "FAILED", "FAILED"]


def test_a_repeated_client_token_is_ignored(world: dict[str, Any]) -> None:
    agent, s3 = world["agent"], world["s3"]
    uri = _chunk(s3, "chunks/d/1.txt", "first")
    _ingest(agent, [uri], token="same" * 10)
    agent.delete_knowledge_base_documents(
        knowledgeBaseId=KB, dataSourceId=DS, clientToken="del" * 12,
        documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}],
    )  # fmt: skip
    _ingest(agent, [uri], token="same" * 10)  # a retry of the first request: nothing happens
    assert _status(agent, uri) == "NOT_FOUND"


def test_one_ingestion_job_at_a_time_and_a_job_syncs_the_prefix(world: dict[str, Any]) -> None:
    agent, s3 = world["agent"], world["s3"]
    _chunk(s3, "chunks/d/1.txt", "alpha")
    job = agent.start_ingestion_job(knowledgeBaseId=KB, dataSourceId=DS)["ingestionJob"]
    assert job["statistics"]["numberOfNewDocumentsIndexed"] == 1
    with pytest.raises(ClientError, match="ConflictException"):
        agent.start_ingestion_job(knowledgeBaseId=KB, dataSourceId=DS)
    get = {"knowledgeBaseId": KB, "dataSourceId": DS, "ingestionJobId": job["ingestionJobId"]}
    assert agent.get_ingestion_job(**get)["ingestionJob"]["status"] == "IN_PROGRESS"
    assert agent.get_ingestion_job(**get)["ingestionJob"]["status"] == "COMPLETE"
    s3.delete_object(Bucket="processed", Key="chunks/d/1.txt")
    token = "retried" * 6  # a request retried after its answer was lost: the job it started, not a second
    again = agent.start_ingestion_job(knowledgeBaseId=KB, dataSourceId=DS, clientToken=token)["ingestionJob"]
    assert again["statistics"]["numberOfDocumentsDeleted"] == 1
    repeated = agent.start_ingestion_job(knowledgeBaseId=KB, dataSourceId=DS, clientToken=token)["ingestionJob"]
    assert repeated["ingestionJobId"] == again["ingestionJobId"]


def test_kendra_refuses_undeclared_attributes_and_s3_paths_without_a_role(world: dict[str, Any]) -> None:
    kendra = world["kendra"]
    declared = {f["Name"] for f in kendra.describe_index(Id=INDEX)["DocumentMetadataConfigurations"]}
    assert {"department", "_source_uri"} <= declared
    failed = kendra.batch_put_document(
        IndexId=INDEX,
        Documents=[
            {"Id": "good", "Blob": b"Expense reports are due monthly.", "ContentType": "PLAIN_TEXT",
             "Attributes": [{"Key": "department", "Value": {"StringValue": "finance"}}]},
            {"Id": "bad", "Blob": b"x", "ContentType": "PLAIN_TEXT",
             "Attributes": [{"Key": "colour", "Value": {"StringValue": "red"}}]},
            {"Id": "s3", "S3Path": {"Bucket": "processed", "Key": "k"}, "ContentType": "PLAIN_TEXT"},
        ],
    )["FailedDocuments"]  # fmt: skip
    assert {f["Id"] for f in failed} == {"bad", "s3"}
    statuses = kendra.batch_get_document_status(IndexId=INDEX, DocumentInfoList=[{"DocumentId": "good"}])
    assert statuses["DocumentStatusList"][0]["DocumentStatus"] == "INDEXED"
    items = kendra.retrieve(IndexId=INDEX, QueryText="expense reports")["ResultItems"]
    assert [i["DocumentId"] for i in items] == ["good"] and "Expense" in items[0]["Content"]
    kendra.batch_delete_document(IndexId=INDEX, DocumentIdList=["good", "never-there"])
    assert kendra.retrieve(IndexId=INDEX, QueryText="expense")["ResultItems"] == []


def test_every_call_is_logged(world: dict[str, Any]) -> None:
    world["kendra"].batch_delete_document(IndexId=INDEX, DocumentIdList=["a", "b"])
    with pytest.raises(ClientError):
        world["kendra"].describe_index(Id="00000000-0000-4000-8000-00000000dead")
    calls = emulators.read_calls(world["dir"])
    assert [(c["operation"], c["items"], c["status"]) for c in calls] == [
        ("BatchDeleteDocument", 2, 200),
        ("DescribeIndex", 1, 404),
    ]


def test_kendra_custom_data_source_syncs_run_one_at_a_time(world: dict[str, Any]) -> None:
    from sluice.adapters.aws.kendra import KendraApi

    kendra, waits = world["kendra"], []
    api = KendraApi(kendra, INDEX, data_source_id="sluice-ds", sleep=waits.append)
    document = {"Id": "d", "Blob": b"Harbour dues are paid monthly.", "ContentType": "PLAIN_TEXT"}
    with api.sync_job():
        assert api.put([document]) == {}
        with pytest.raises(TransientError, match="stayed busy"), api.sync_job():  # another worker's turn
            pass
    assert waits == [1, 2, 4, 8, 15]  # about half a minute, then the message is retried later
    failed = kendra.batch_put_document(
        IndexId=INDEX,
        Documents=[{**document, "Attributes": [{"Key": "_data_source_id", "Value": {"StringValue": "sluice-ds"}}]}],
    )["FailedDocuments"]
    assert "no running sync job" in failed[0]["ErrorMessage"]  # outside a sync job, Kendra refuses it
    operations = [c["operation"] for c in emulators.read_calls(world["dir"])]
    assert operations[:2] == ["StartDataSourceSyncJob", "BatchPutDocument"] and "StopDataSourceSyncJob" in operations


def test_a_sync_job_orphaned_by_a_lost_worker_is_stopped(world: dict[str, Any]) -> None:
    import sqlite3

    from sluice.adapters.aws.kendra import KendraApi

    kendra = world["kendra"]
    kendra.start_data_source_sync_job(Id="sluice-ds", IndexId=INDEX)  # its worker died: never stopped
    with sqlite3.connect(world["dir"] / emulators.DB_FILE) as db:
        db.execute("UPDATE kendra_sync_jobs SET started_at = '2026-01-01T00:00:00+00:00'")
    api = KendraApi(kendra, INDEX, data_source_id="sluice-ds", sleep=lambda _: None)
    with api.sync_job():
        assert api.put([{"Id": "d", "Blob": b"Buoys are checked weekly.", "ContentType": "PLAIN_TEXT"}]) == {}
    operations = [c["operation"] for c in emulators.read_calls(world["dir"])]
    assert operations[1:] == [
        "StartDataSourceSyncJob",  # busy
        "ListDataSourceSyncJobs",
        "StopDataSourceSyncJob",  # the orphan
        "StartDataSourceSyncJob",
        "BatchPutDocument",
        "StopDataSourceSyncJob",
    ]


def _created_knowledge_base(world: dict[str, Any], dimension: int, non_filterable: list[str]) -> tuple[str, str]:
    """A vector bucket, an index and a knowledge base over it, made by their API calls as the local
    stack makes them from template.yaml; the knowledge base's id and its data source's."""
    vectors = boto3.client("s3vectors")
    vectors.create_vector_bucket(vectorBucketName="vectors")
    config = {"nonFilterableMetadataKeys": non_filterable} if non_filterable else {}
    index = vectors.create_index(
        vectorBucketName="vectors",
        indexName="chunks",
        dataType="float32",
        dimension=dimension,
        distanceMetric="cosine",
        **({"metadataConfiguration": config} if config else {}),
    )["indexArn"]
    kb = world["agent"].create_knowledge_base(
        name="kb",
        roleArn="arn:aws:iam::123456789012:role/kb",
        knowledgeBaseConfiguration={
            "type": "VECTOR",
            "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                "embeddingModelConfiguration": {"bedrockEmbeddingModelConfiguration": {"dimensions": 1024}},
            },
        },
        storageConfiguration={"type": "S3_VECTORS", "s3VectorsConfiguration": {"indexArn": index}},
    )["knowledgeBase"]["knowledgeBaseId"]
    ds = world["agent"].create_data_source(
        knowledgeBaseId=kb,
        name="chunks",
        dataSourceConfiguration={
            "type": "S3",
            "s3Configuration": {"bucketArn": "arn:aws:s3:::processed", "inclusionPrefixes": ["chunks/"]},
        },
        dataDeletionPolicy="RETAIN",
    )["dataSource"]["dataSourceId"]
    return kb, ds


def test_a_knowledge_base_takes_only_an_index_of_its_embedding_dimension(world: dict[str, Any]) -> None:
    with pytest.raises(ClientError, match="differ from the vector index's dimension"):
        _created_knowledge_base(world, 512, [])


def test_chunk_text_counts_as_filterable_metadata_unless_the_index_says_otherwise(world: dict[str, Any]) -> None:
    long_text = "A sentence that fills the chunk. " * 100  # 3,300 bytes
    for keys, expected in (([], "FAILED"), (["AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA"], "INDEXED")):
        with mock_aws():
            boto3.client("s3").create_bucket(Bucket="processed")
            emulators.install(world["dir"] / f"kb-{expected}", s3=boto3.client("s3"))
            kb, ds = _created_knowledge_base(world | {"agent": boto3.client("bedrock-agent")}, 1024, keys)
            uri = _chunk(boto3.client("s3"), "chunks/d/long.txt", long_text)
            agent = boto3.client("bedrock-agent")
            agent.ingest_knowledge_base_documents(
                knowledgeBaseId=kb,
                dataSourceId=ds,
                documents=[{"content": {"dataSourceType": "S3", "s3": {"s3Location": {"uri": uri}}}}],
            )
            detail = agent.get_knowledge_base_documents(
                knowledgeBaseId=kb, dataSourceId=ds, documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}]
            )["documentDetails"][0]
            assert detail["status"] == expected, detail
            if expected == "FAILED":
                assert "Filterable metadata must have at most 2048 bytes" in detail["statusReason"]


def test_retrieve_and_generate_answers_from_what_the_filter_admits_and_cites_it(world: dict[str, Any]) -> None:
    s3, agent, runtime = world["s3"], world["agent"], world["runtime"]

    def acl(*allow: str) -> dict[str, Any]:
        return {"acl_allow": {"value": {"type": "STRING_LIST", "stringListValue": list(allow)}}}

    secret = _chunk(
        s3, "chunks/a/1.txt", "The heron budget is forty-two pebbles. Herons count pebbles.", acl("group:board")
    )
    public = _chunk(s3, "chunks/b/1.txt", "The heron is a bird that wades. A heron counts fish, not pebbles.", acl("*"))
    _ingest(agent, [secret, public])
    question = {"text": "How many pebbles is the heron budget?"}

    def ask(model: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
        search: dict[str, Any] = {"numberOfResults": 5} | ({"filter": condition} if condition else {})
        return dict(
            runtime.retrieve_and_generate(
                input=question,
                retrieveAndGenerateConfiguration={
                    "type": "KNOWLEDGE_BASE",
                    "knowledgeBaseConfiguration": {
                        "knowledgeBaseId": KB,
                        "modelArn": model,
                        "retrievalConfiguration": {"vectorSearchConfiguration": search},
                    },
                },
            )
        )

    with pytest.raises(ClientError, match="on-demand throughput isn't supported"):
        ask("amazon.nova-2-lite-v1:0")
    profile = "us.amazon.nova-2-lite-v1:0"
    answer = ask(profile)
    assert answer["output"]["text"].startswith("Emulated answer")
    cited = [r["location"]["s3Location"]["uri"] for c in answer["citations"] for r in c["retrievedReferences"]]
    assert cited[0] == secret  # the best match
    for citation in answer["citations"]:
        span, text = citation["generatedResponsePart"]["textResponsePart"]["span"], answer["output"]["text"]
        assert text[span["start"] : span["end"] + 1] == citation["generatedResponsePart"]["textResponsePart"]["text"]
    outsider = ask(profile, {"orAll": [{"listContains": {"key": "acl_allow", "value": v}} for v in ("*", "user:x")]})
    cited = [r["location"]["s3Location"]["uri"] for c in outsider["citations"] for r in c["retrievedReferences"]]
    assert cited == [public]
