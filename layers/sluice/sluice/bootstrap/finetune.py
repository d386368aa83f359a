"""FineTuneFunction's service: the Lambda steps of the fine-tune state machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sluice.adapters.aws import error_code, is_transient
from sluice.adapters.aws.models import (
    check_model,
    converse_text,
    customization_job_quota,
    customization_support,
)
from sluice.adapters.aws.registry import DynamoDBRegistry
from sluice.adapters.aws.s3 import S3BucketWriter, S3ObjectReader
from sluice.bootstrap import Clients
from sluice.errors import TransientError
from sluice.finetune.evaluation import EvaluationError
from sluice.finetune.workflow import FineTuneSteps
from sluice.settings import Env


@dataclass(frozen=True, slots=True)
class FineTuneFunctionSettings:
    """The fine-tune steps: the registry of the corpus, and the buckets a dataset may be read from."""

    processed_bucket: str
    documents_table: str
    raw_bucket: str | None = None
    stack: str = ""  # tags what the workflow makes, so it deletes only its own

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FineTuneFunctionSettings:
        e = Env(env)
        processed, table = e.required("PROCESSED_BUCKET"), e.required("DOCUMENTS_TABLE")
        e.check()
        return cls(
            processed_bucket=processed,
            documents_table=table,
            raw_bucket=e.optional("RAW_BUCKET"),
            stack=e.optional("STACK_NAME") or "",
        )


@dataclass(frozen=True)
class FineTuneFunction:
    steps: FineTuneSteps

    def run(self, step: str, state: dict[str, Any], execution: str) -> dict[str, Any]:
        """The step's new state. An AWS failure a retry may fix raises TransientError (the state
        machine retries that name, by the same rule as every adapter); input and dataset problems
        raise their own errors, which the state machine turns into the execution's failure cause."""
        try:
            return self.steps.run(step, state, execution)
        except ClientError as exc:
            if is_transient(exc):
                message = exc.response.get("Error", {}).get("Message", "")
                raise TransientError(f"{error_code(exc)}: {message}") from exc
            raise
        except BotoCoreError as exc:  # connection and read timeouts, after botocore's own retries
            if is_transient(exc):
                raise TransientError(str(exc)) from exc
            raise


def build(env: Mapping[str, str], clients: Clients | None = None) -> FineTuneFunction:
    settings = FineTuneFunctionSettings.from_env(env)
    clients = clients or Clients()

    def callable_model(model: str) -> str:
        """What to call for a base model: itself, or the inference profile that serves it here."""
        bedrock = clients("bedrock")
        check = check_model(bedrock, model, str(bedrock.meta.region_name or ""))
        if not check.usable:
            raise EvaluationError(f"the base model {model} cannot be called to compare: {'; '.join(check.problems)}")
        return check.invoke_id

    return FineTuneFunction(
        FineTuneSteps(
            documents=DynamoDBRegistry(clients("dynamodb"), settings.documents_table),
            reader=S3ObjectReader(clients("s3")),
            writer=S3BucketWriter(clients("s3"), settings.processed_bucket),
            processed_bucket=settings.processed_bucket,
            readable_buckets=frozenset(filter(None, (settings.processed_bucket, settings.raw_bucket))),
            # ValidateInput asks Bedrock about the base model (the client is made on first use).
            support=lambda base_model: customization_support(clients("bedrock"), base_model),
            quota=lambda: customization_job_quota(clients("service-quotas")),
            delete_model=lambda arn: clients("bedrock").delete_custom_model(modelIdentifier=arn),
            ask=lambda model, system, turns: converse_text(clients("bedrock-runtime"), model, system, turns),
            resolve_model=callable_model,
            stack=settings.stack,
        )
    )
