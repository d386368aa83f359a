"""The knowledge base in template.yaml: KnowledgeBaseMode create (the stack's own over Amazon S3 Vectors,
the default), existing (KnowledgeBaseId's) or off. Which parameters make which resources exist, every
use of the knowledge base's id going through the mode, the service role's exact grants, the one
embedding dimension of the model and the index, and what deleting the stack leaves."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sluice_local.template import Resolver
from template.conftest import KNOWLEDGE_BASE_ARN, KNOWLEDGE_BASE_ID, MODES

pytestmark = pytest.mark.template

CREATED = ("VectorBucket", "VectorIndex", "KnowledgeBaseServiceRole", "KnowledgeBase")
# The data source's form of KNOWLEDGE_BASE_ID (it exists only with a knowledge base, so the two agree;
# see test_the_data_source_names_the_same_knowledge_base).
DATA_SOURCE_KNOWLEDGE_BASE_ID = {
    "Fn::If": [
        "HasExistingKnowledgeBase",
        {"Ref": "KnowledgeBaseId"},
        {"Fn::GetAtt": ["KnowledgeBase", "KnowledgeBaseId"]},
    ]
}
KB_CONDITIONS = ("CreatesKnowledgeBase", "HasKnowledgeBase", "CreatesDataSource", "GrantsKnowledgeBaseRole")
# parameters -> (CreatesKnowledgeBase, HasKnowledgeBase, CreatesDataSource, GrantsKnowledgeBaseRole)
CASES = [
    pytest.param(MODES["create"], (True, True, True, False), id="create"),
    pytest.param({"KnowledgeBaseId": "IGNOREDKB1", "KnowledgeBaseRoleArn": "arn:aws:iam::123456789012:role/r"},
                 (True, True, True, False), id="create ignores the existing-mode parameters"),
    pytest.param(MODES["existing"], (False, True, True, True), id="existing, with its role"),
    pytest.param({**MODES["existing"], "KnowledgeBaseRoleArn": ""}, (False, True, True, False), id="existing"),
    pytest.param({**MODES["existing"], "KnowledgeBaseDataSourceId": "EXISTINGDS"}, (False, True, False, True),
                 id="existing, with its data source"),
    pytest.param({"KnowledgeBaseMode": "existing"}, (False, False, False, False), id="existing without an id"),
    pytest.param(MODES["off"], (False, False, False, False), id="off"),
    pytest.param({**MODES["existing"], "KnowledgeBaseMode": "off"}, (False, False, False, False),
                 id="off ignores the existing-mode parameters"),
]  # fmt: skip


def _conditions(source: dict[str, Any], parameters: dict[str, str]) -> Resolver:
    return Resolver(source, "sluice", parameters)


def _uses(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, form) of every use of the knowledge base's id in a value: "mode" for KNOWLEDGE_BASE_ID,
    "data source" for DATA_SOURCE_KNOWLEDGE_BASE_ID, "bare" for any other Ref or ${} of the parameter."""
    if value == KNOWLEDGE_BASE_ID:
        return [(path, "mode")]
    if value == DATA_SOURCE_KNOWLEDGE_BASE_ID:
        return [(path, "data source")]
    if value == {"Ref": "KnowledgeBaseId"}:
        return [(path, "bare")]
    if isinstance(value, dict):
        found = []
        if isinstance(value.get("Fn::Sub"), str | list):
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            found += [(path, "bare")] * len(re.findall(r"\$\{KnowledgeBaseId\}", text))
        return found + [use for key, item in value.items() for use in _uses(item, f"{path}/{key}")]
    if isinstance(value, list):
        return [use for i, item in enumerate(value) for use in _uses(item, f"{path}/{i}")]
    return []


# -- the modes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("parameters", "expected"), CASES)
def test_the_mode_decides_which_knowledge_base_exists(
    source: dict[str, Any], parameters: dict[str, str], expected: tuple[bool, ...]
) -> None:
    stack = _conditions(source, parameters)
    assert tuple(stack.condition(c) for c in KB_CONDITIONS) == expected
    assert stack.condition("HasKnowledgeBaseRole") == (expected[0] or expected[3])
    creates = expected[0]
    assert {name for name in CREATED if name in stack.resources} == (set(CREATED) if creates else set())
    for name in ("SyncKnowledgeBaseFunction", "KnowledgeBaseQueue", "KnowledgeBaseRule"):
        assert (name in stack.resources) == expected[1], name
    assert ("KnowledgeBaseDataSource" in stack.resources) == expected[2]


def test_the_stack_creates_its_knowledge_base_unless_told_otherwise(source: dict[str, Any]) -> None:
    mode = source["Parameters"]["KnowledgeBaseMode"]
    assert (mode["Default"], mode["AllowedValues"]) == ("create", ["create", "existing", "off"])
    for name in CREATED:
        assert source["Resources"][name]["Condition"] == "CreatesKnowledgeBase", name


def test_existing_mode_refuses_to_deploy_without_the_knowledge_base_id(source: dict[str, Any]) -> None:
    (rule,) = source["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "KnowledgeBaseMode"}, "existing"]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "KnowledgeBaseId"}, ""]}]}
    assert "KnowledgeBaseId" in assertion["AssertDescription"]


def test_every_use_of_the_knowledge_base_id_goes_through_the_mode(source: dict[str, Any]) -> None:
    uses = _uses(source["Resources"], "Resources") + _uses(source["Outputs"], "Outputs")
    assert [path for path, form in uses if form == "bare"] == []
    assert sorted(re.sub(r"/\d+", "/#", path) for path, form in uses if form == "mode") == [
        "Outputs/KnowledgeBaseId/Value",
        "Resources/ReconcileFunction/Properties/Environment/Variables/KNOWLEDGE_BASE_ID",
        "Resources/ReconcileFunction/Properties/Policies/#/Statement/#/Fn::If/#/Resource/Fn::Sub/#/Id",
        "Resources/SyncKnowledgeBaseFunction/Properties/Environment/Variables/KNOWLEDGE_BASE_ID",
        "Resources/SyncKnowledgeBaseFunction/Properties/Policies/#/Statement/#/Resource/Fn::Sub/#/Id",
    ]
    assert [path for path, form in uses if form == "data source"] == [
        "Resources/KnowledgeBaseDataSource/Properties/KnowledgeBaseId"
    ]
    (ask,) = [
        s["Fn::If"]
        for policy in source["Resources"]["ReconcileFunction"]["Properties"]["Policies"]
        for s in policy.get("Statement", [])
        if "Fn::If" in s and s["Fn::If"][1].get("Sid") == "AskTheKnowledgeBase"
    ]
    assert (ask[0], ask[1]["Resource"]["Fn::Sub"]) == ("HasKnowledgeBase", KNOWLEDGE_BASE_ARN)


@pytest.mark.parametrize(("parameters", "expected"), CASES)
def test_the_data_source_names_the_same_knowledge_base(
    source: dict[str, Any], parameters: dict[str, str], expected: tuple[bool, ...]
) -> None:
    """DATA_SOURCE_KNOWLEDGE_BASE_ID takes the branch KNOWLEDGE_BASE_ID takes wherever the data source exists."""
    stack = _conditions(source, parameters)
    if stack.condition("CreatesDataSource"):
        assert stack.condition("HasExistingKnowledgeBase") == (not stack.condition("CreatesKnowledgeBase"))


# -- the stack's knowledge base -----------------------------------------------------------------------


def _statements(role: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A role's inline statements by Sid (without it)."""
    (policy,) = role["Properties"]["Policies"]
    return {s["Sid"]: {k: v for k, v in s.items() if k != "Sid"} for s in policy["PolicyDocument"]["Statement"]}


def test_the_service_role_is_bedrocks_for_this_accounts_knowledge_bases_only(source: dict[str, Any]) -> None:
    role = source["Resources"]["KnowledgeBaseServiceRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "bedrock.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnLike": {
                "aws:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:knowledge-base/*"
                }
            },
        },
    }
    assert "ManagedPolicyArns" not in role and "RoleName" not in role  # no CAPABILITY_NAMED_IAM


def test_the_service_role_embeds_reads_chunks_and_uses_the_index_and_nothing_else(source: dict[str, Any]) -> None:
    embedding_model = {"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/${EmbeddingModelId}"}
    assert _statements(source["Resources"]["KnowledgeBaseServiceRole"]) == {
        "EmbedWithTheModel": {"Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": embedding_model},
        "ListChunks": {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::GetAtt": ["ProcessedBucket", "Arn"]},
            "Condition": {"StringLike": {"s3:prefix": "chunks/*"}},
        },
        "ReadChunks": {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ProcessedBucket.Arn}/chunks/*"},
        },
        # the chunks' SSE-KMS through S3; the vectors' through S3 Vectors, which asks the caller of
        # every vector operation for kms:Decrypt on the index's key (S3 User Guide)
        "DecryptThroughS3AndS3Vectors": {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": {"Fn::GetAtt": ["DataKey", "Arn"]},
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"},
                        {"Fn::Sub": "s3vectors.${AWS::Region}.amazonaws.com"},
                    ]
                }
            },
        },
        "UseTheVectorIndex": {
            "Effect": "Allow",
            "Action": [
                "s3vectors:GetIndex",
                "s3vectors:QueryVectors",
                "s3vectors:PutVectors",
                "s3vectors:GetVectors",
                "s3vectors:DeleteVectors",
            ],
            "Resource": {"Fn::GetAtt": ["VectorIndex", "IndexArn"]},
        },
    }
    knowledge_base = source["Resources"]["KnowledgeBase"]["Properties"]
    assert knowledge_base["RoleArn"] == {"Fn::GetAtt": ["KnowledgeBaseServiceRole", "Arn"]}
    assert knowledge_base["KnowledgeBaseConfiguration"]["VectorKnowledgeBaseConfiguration"]["EmbeddingModelArn"] == (
        embedding_model
    )


def test_the_model_and_the_index_agree_on_one_embedding(source: dict[str, Any]) -> None:
    index = source["Resources"]["VectorIndex"]["Properties"]
    knowledge_base = source["Resources"]["KnowledgeBase"]["Properties"]
    vector = knowledge_base["KnowledgeBaseConfiguration"]["VectorKnowledgeBaseConfiguration"]
    embedding = vector["EmbeddingModelConfiguration"]["BedrockEmbeddingModelConfiguration"]
    assert index["Dimension"] == embedding["Dimensions"] == {"Ref": "EmbeddingDimensions"}
    assert (index["DataType"], embedding["EmbeddingDataType"]) == ("float32", "FLOAT32")
    assert index["DistanceMetric"] == "cosine"
    assert knowledge_base["KnowledgeBaseConfiguration"]["Type"] == "VECTOR"
    assert knowledge_base["StorageConfiguration"] == {
        "Type": "S3_VECTORS",
        "S3VectorsConfiguration": {"IndexArn": {"Fn::GetAtt": ["VectorIndex", "IndexArn"]}},
    }
    assert index["VectorBucketArn"] == {"Fn::GetAtt": ["VectorBucket", "VectorBucketArn"]}
    dimensions, model = source["Parameters"]["EmbeddingDimensions"], source["Parameters"]["EmbeddingModelId"]
    assert (dimensions["Type"], dimensions["MinValue"], dimensions["MaxValue"]) == ("Number", 1, 4096)
    # the default model and the dimensions it takes (Titan Text Embeddings V2: 1024, 512 or 256)
    assert (model["Default"], dimensions["Default"]) == ("amazon.titan-embed-text-v2:0", 1024)


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [
        ("amazon.titan-embed-text-v2:0", "1024"),
        ("amazon.titan-embed-text-v2:0", "256"),
        ("cohere.embed-multilingual-v3", "1024"),
        ("amazon.nova-2-multimodal-embeddings-v1:0", "3072"),
        ("a" * 20 + "." + "b" * 29, "4096"),  # the longest EmbeddingModelId allows
    ],
)
def test_a_new_embedding_gets_a_new_index_and_knowledge_base(
    source: dict[str, Any], model: str, dimensions: str
) -> None:
    """EmbeddingModelId and EmbeddingDimensions are in the index's and the knowledge base's names: a
    change replaces both (the model alone would change neither the index's Dimension nor its name
    otherwise), and the replacement does not take the old knowledge base's name, which Bedrock refuses."""
    resources, parameter = source["Resources"], source["Parameters"]["EmbeddingModelId"]
    assert re.fullmatch(parameter["AllowedPattern"], model) and len(model) <= parameter["MaxLength"]

    def names(model: str, dimensions: str) -> tuple[str, str]:
        stack = Resolver(source, "sluice-prod", {"EmbeddingModelId": model, "EmbeddingDimensions": dimensions})
        index_name = stack.resolve(resources["VectorIndex"]["Properties"]["IndexName"])
        return index_name, stack.resolve(resources["KnowledgeBase"]["Properties"]["Name"])

    index_name, knowledge_base_name = names(model, dimensions)
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", index_name), index_name  # S3 Vectors' index names
    assert re.fullmatch(r"([0-9a-zA-Z][_-]?){1,100}", knowledge_base_name), knowledge_base_name  # Bedrock's
    for other in (names("amazon.titan-embed-g1-text-02", dimensions), names(model, "512")):
        assert other[0] != index_name and other[1] != knowledge_base_name


def test_bedrocks_text_and_metadata_are_stored_but_not_filterable(source: dict[str, Any]) -> None:
    """Filterable metadata is limited to 2 KB a vector: Bedrock's chunk text and metadata there fail
    ingestion ("Filterable metadata must have at most 2048 bytes")."""
    keys = source["Resources"]["VectorIndex"]["Properties"]["MetadataConfiguration"]["NonFilterableMetadataKeys"]
    assert {"AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA"} <= set(keys)


def test_vectors_are_under_the_stack_key_which_s3_vectors_may_use_for_this_account_only(
    source: dict[str, Any],
) -> None:
    for name in ("VectorBucket", "VectorIndex"):
        assert source["Resources"][name]["Properties"]["EncryptionConfiguration"] == {
            "SseType": "aws:kms",
            "KmsKeyArn": {"Fn::GetAtt": ["DataKey", "Arn"]},
        }, name
    statements = source["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    (indexing,) = [
        s["Fn::If"] for s in statements if "Fn::If" in s and s["Fn::If"][1]["Sid"] == "S3VectorsIndexesEncryptedVectors"
    ]
    condition, statement, otherwise = indexing
    assert (condition, otherwise) == ("CreatesKnowledgeBase", {"Ref": "AWS::NoValue"})
    assert statement["Principal"] == {"Service": "indexing.s3vectors.amazonaws.com"}
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Condition"] == {
        "ArnLike": {
            "aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:s3vectors:${AWS::Region}:${AWS::AccountId}:bucket/*"}
        },
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["aws:s3vectors:arn", "aws:s3vectors:resource-id"]},
    }
    # the existing mode's role is granted in the bucket and key policies; the stack's own needs neither
    for policy in (
        statements,
        source["Resources"]["ProcessedBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"],
    ):
        (grant,) = [
            s["Fn::If"] for s in policy if "Fn::If" in s and s["Fn::If"][1]["Sid"] == "KnowledgeBaseReadsChunks"
        ]
        assert grant[0] == "GrantsKnowledgeBaseRole"


def test_deleting_the_stack_or_the_data_source_cannot_get_stuck(source: dict[str, Any]) -> None:
    """RETAIN: deleting the data source does not delete its vectors through the knowledge base (which
    fails when the store or the role went first). The store itself is derived from chunks/ and goes
    with the stack, after the knowledge base that references it."""
    resources = source["Resources"]
    assert resources["KnowledgeBaseDataSource"]["Properties"]["DataDeletionPolicy"] == "RETAIN"
    for name in ("VectorBucket", "VectorIndex", "KnowledgeBase"):
        assert (resources[name]["DeletionPolicy"], resources[name]["UpdateReplacePolicy"]) == ("Delete", "Delete")
    assert resources["ProcessedBucket"]["DeletionPolicy"] == "Retain"  # what the index is rebuilt from


def test_outputs_name_the_knowledge_base_in_each_mode(source: dict[str, Any]) -> None:
    outputs = source["Outputs"]
    assert {name: outputs[name].get("Condition") for name in (
        "KnowledgeBaseMode", "KnowledgeBaseId", "KnowledgeBaseArn", "KnowledgeBaseDataSourceId", "KnowledgeBaseRoleArn",
        "VectorBucketArn", "VectorIndexArn", "EmbeddingModelArn", "GenerationModelId",
    )} == {
        "KnowledgeBaseMode": None, "KnowledgeBaseId": "HasKnowledgeBase", "KnowledgeBaseArn": "CreatesKnowledgeBase",
        "KnowledgeBaseDataSourceId": "HasKnowledgeBase", "KnowledgeBaseRoleArn": "HasKnowledgeBaseRole",
        "VectorBucketArn": "CreatesKnowledgeBase", "VectorIndexArn": "CreatesKnowledgeBase",
        "EmbeddingModelArn": "CreatesKnowledgeBase", "GenerationModelId": None,
    }  # fmt: skip
    assert outputs["KnowledgeBaseId"]["Value"] == KNOWLEDGE_BASE_ID
    assert outputs["KnowledgeBaseRoleArn"]["Value"] == {
        "Fn::If": [
            "CreatesKnowledgeBase",
            {"Fn::GetAtt": ["KnowledgeBaseServiceRole", "Arn"]},
            {"Ref": "KnowledgeBaseRoleArn"},
        ]
    }
    assert outputs["GenerationModelId"]["Value"] == {"Ref": "GenerationModelId"}


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        ("amazon.nova-2-lite-v1:0", True),
        ("us.amazon.nova-2-lite-v1:0", True),  # an inference profile
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0", True),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6", True),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0", True),
        ("", False),
        ("nova lite", False),
        ("arn:aws:s3:::bucket", False),
    ],
)
def test_the_generation_model_is_a_model_or_an_inference_profile(
    source: dict[str, Any], model: str, valid: bool
) -> None:
    parameter = source["Parameters"]["GenerationModelId"]
    assert parameter["Default"] == "amazon.nova-2-lite-v1:0"
    assert bool(re.fullmatch(parameter["AllowedPattern"], model)) is valid
    # no resource uses it: the CLI reads it from the outputs
    assert "GenerationModelId" not in str(source["Resources"])
