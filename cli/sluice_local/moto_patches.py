"""Where moto differs from AWS in ways Sluice's code paths depend on, make it match, so the local
stack exercises the same paths as a deployed one:

- AWS puts ``sequencer`` (per key, increasing) and, on versioned buckets, ``versionId`` in every
  object-created and object-removed record; moto sends neither.
- Deleting an object in a versioned bucket creates a delete marker and AWS sends
  ``ObjectRemoved:DeleteMarkerCreated``; moto sends nothing.
- Step Functions' AWS SDK integrations take PascalCase parameters and answer with PascalCase keys
  (``JobName`` in, ``JobArn`` out); moto's interpreter passes both through as they are, which
  botocore cannot serialise. Here they are translated with the service model, as AWS does.
- Bedrock's model-customization jobs take a job name or ARN; moto only a name. And a moto job stays
  ``InProgress`` forever: here it completes after JOB_CHECKS_TO_COMPLETE status checks (training,
  locally, is instant), unless something set another status (a test failing or stopping it). A
  completed job reports its losses, in its record and in the metrics files AWS writes under the
  output prefix; no training happens locally, so they are a fixed function of the hyperparameters
  (``local_losses``), with a best in the middle of the demo's grid. moto names a job's output model
  apart from the custom model it registers (``name-jobname``): here they are one, as in AWS, and
  DeleteCustomModel takes its ARN as well as its name.
- An execution started without ``name`` (``aws stepfunctions start-execution --state-machine-arn``)
  gets a fresh UUID as its name on AWS; moto's interpreter names it ``None``, so a second unnamed
  start collides with the first. Here it gets the UUID.
- moto's GetExecutionHistory ignores ``reverseOrder`` (newest first), which `sluice finetune` uses to
  read only the events it has not seen; here it is honoured.
- Step Functions' Distributed Map (ItemBatcher, Express children, every page of an S3 listing, S3
  Inventory manifests, MaxConcurrency, the tolerated failure threshold, Map Run counts) and
  RedriveExecution, which moto's interpreter lacks or gets wrong: ``distributed_map``.
- moto's Step Functions interpreter logs an ERROR with a traceback-like line whenever a Choice's
  ``IsPresent`` test finds the path absent, which is that test's documented use; silenced.
- Speed, with the same answers (``_speed_up``): the server lists moto's package directory on every
  request, EventBridge builds a new JSONPath parser for every delivery, and an SQS receive costs
  O(messages in the queue) several times over per message received (each computes every queue
  attribute to read the retention period, and every visibility check builds datetimes). A queue
  holding thousands of notifications (a bulk upload, `make load`) made each receive take seconds.

Applied once, in the process that runs the moto server; dev-only, never in the Lambda layer.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import unquote

from sluice_local import distributed_map

_lock = threading.Lock()
_counter = itertools.count(time.time_ns())
_applied = False
JOB_CHECKS_TO_COMPLETE = 2


def next_sequencer() -> str:
    """Hex, increasing across the process, like S3's per-key sequencers."""
    with _lock:
        return f"{next(_counter):018X}"


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.s3 import models, notifications

    original_event = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original_event(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        obj["sequencer"] = next_sequencer()
        version = getattr(key, "version_id", None)
        if bucket.is_versioned and version:
            obj["versionId"] = str(version)
        return event

    notifications._get_s3_event = get_s3_event

    original_delete = models.S3Backend.delete_object

    def delete_object(
        self: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        success, meta = original_delete(self, bucket_name, key_name, version_id=version_id, bypass=bypass)
        if success and version_id is None and meta.get("delete-marker") == "true":
            bucket = self.get_bucket(bucket_name)
            marker = bucket.keys[key_name]
            _send_delete_marker_event(self.account_id, bucket, key_name, marker)
        return success, meta

    models.S3Backend.delete_object = delete_object  # type: ignore[method-assign]
    _patch_bedrock_jobs()
    _patch_sdk_integrations()
    _patch_history_order()
    _patch_unnamed_executions()
    distributed_map.apply()
    _speed_up()
    logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
    _applied = True


def _patch_sdk_integrations() -> None:
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as sdk,
    )

    models = botocore.session.get_session()

    def operation(task: Any) -> Any:
        action = task.resource.api_action
        return models.get_service_model(task._get_boto_service_name()).operation_model(action[0].upper() + action[1:])

    def normalise_parameters(self: Any, parameters: dict[str, Any], *_: Any, **__: Any) -> None:
        self._to_boto_request(parameters, operation(self).input_shape)

    def normalise_response(self: Any, response: Any, *_: Any, **__: Any) -> None:
        shape = operation(self).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    sdk._SERVICE_ERROR_NAMES.setdefault("bedrock", "Bedrock")  # errors are Bedrock.ThrottlingException, as in AWS
    sdk.StateTaskServiceAwsSdk._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    sdk.StateTaskServiceAwsSdk._normalise_response = normalise_response  # type: ignore[method-assign]


def _patch_history_order() -> None:
    from moto.stepfunctions import responses

    original = responses.StepFunctionResponse.get_execution_history

    def get_execution_history(self: Any) -> Any:
        result = original(self)
        if self._get_param("reverseOrder"):
            history: dict[str, Any] = dict(result.result)  # type: ignore[call-overload]
            history["events"] = list(reversed(history["events"]))
            result._result = history
        return result

    responses.StepFunctionResponse.get_execution_history = get_execution_history  # type: ignore[method-assign]


def _patch_unnamed_executions() -> None:
    """The name goes into the execution's ARN as it is, so every unnamed execution was
    ``...:execution:MACHINE:None``: the second was refused (or, same input and still running, taken
    for the first). AWS names each one with a UUID."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


def _speed_up() -> None:
    import functools

    import jsonpath_ng.ext
    from moto import backends
    from moto.sqs import models as sqs

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # the server asks on every request
    cached = functools.lru_cache(maxsize=512)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]
    jsonpath_ng.ext.parse = cached  # type: ignore[attr-defined]  # moto's EventBridge imports it per delivery

    # time.time() is the clock moto's unix_time_millis() reads, without the datetimes.
    sqs.Message.visible = property(lambda self: time.time() * 1000 > self.visible_at)  # type: ignore[assignment]
    sqs.Message.delayed = property(lambda self: time.time() * 1000 < self.delayed_until)  # type: ignore[assignment]

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > time.time())

    original_attributes = sqs.SQSBackend.get_queue_attributes

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        valid = {"All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES}
        if not attribute_names or any(name not in valid for name in attribute_names):
            return dict(original_attributes(self, queue_name, attribute_names))  # its answer, or its error
        everything: dict[str, Any] = queue.attributes  # computed once, not twice per name asked
        if "All" in attribute_names:
            return everything
        return {name: everything[name] for name in attribute_names if everything.get(name) is not None}

    sqs.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    sqs.SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    _speed_up_prefix_listing()
    _serialise_sqs_queues()


def _serialise_sqs_queues() -> None:
    """moto's server is threaded, but a queue's DeleteMessage rebuilds its message list without the
    lock its SendMessage takes, and ReceiveMessage moves messages to the dead-letter queue unlocked.
    Two deletes at once could put a deleted message back, received, so in flight for the queue's
    whole visibility timeout (1,810 s; 3,610 s for the sinks), and a send racing a delete could lose
    a message. Each queue's changes now hold that queue's own lock; a long poll waits outside it."""
    from moto.sqs import models as sqs

    original_delete = sqs.Queue.delete_message
    original_receive = sqs.SQSBackend.receive_message
    original_purge = sqs.SQSBackend.purge_queue

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            original_delete(self, receipt_handle)

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        queue = self.get_queue(queue_name)
        deadline = time.time() + (wait_seconds_timeout or 0)
        while True:
            with queue._messages_lock:
                result = original_receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.time()
            if result or remaining <= 0:
                return result
            queue.wait_for_messages(min(1.0, remaining))

    def purge_queue(self: Any, queue_name: str) -> None:
        with self.get_queue(queue_name)._messages_lock:
            original_purge(self, queue_name)

    sqs.Queue.delete_message = delete_message  # type: ignore[method-assign]
    sqs.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    sqs.SQSBackend.purge_queue = purge_queue  # type: ignore[method-assign]


def _speed_up_prefix_listing() -> None:
    """moto answers a ListObjects with a prefix by reading the newest version of every key in the
    bucket (0.08 s at 37,000 objects), and ingestion lists one document's prefix per new version, so
    a 5,000-document load slowed as ProcessedBucket grew. The same answer, from the key names first:
    only the keys under the prefix are read. (S3 itself indexes keys by prefix.)"""
    from moto.s3 import models as s3

    original = s3.S3Backend.list_objects

    def list_objects(
        self: Any, bucket: Any, prefix: str | None, delimiter: str | None, marker: str | None, max_keys: int | None
    ) -> Any:
        if not prefix or isinstance(bucket, s3.FakeTableStorageBucket):
            return original(self, bucket, prefix, delimiter, marker, max_keys)
        keys, folders = [], set()
        for name in [n for n in dict.keys(bucket.keys) if n.startswith(prefix)]:
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folders.add(f"{prefix}{rest.split(delimiter)[0]}{delimiter}")
                continue
            key = bucket.keys[name]  # its newest version
            if not isinstance(key, s3.FakeDeleteMarker):
                keys.append(key)
        keys.sort(key=lambda key: key.name)
        if marker:
            keys = self._get_results_from_token(keys, self._pagination_tokens.get(marker) or marker)
        if max_keys is None:
            return keys, sorted(folders), False, None
        keys, truncated, next_marker = self._truncate_result(keys, max_keys)
        return keys, sorted(folders), truncated, next_marker

    s3.S3Backend.list_objects = list_objects  # type: ignore[method-assign]


def _job_name(identifier: str) -> str:
    """A job name from a name or an ARN (which arrives URL-encoded in the request path)."""
    return unquote(identifier).rsplit("/", 1)[-1]


def local_losses(hyperparameters: dict[str, str], epochs_default: int = 2) -> tuple[float, float]:
    """The local stack's training and validation loss for a job: training loss falls with the
    amount of learning (epochs x learning rate), validation loss then rises again (overfitting), so
    a search over learningRate x epochCount has its best in between."""
    learning = int(hyperparameters.get("epochCount", epochs_default)) * float(
        hyperparameters.get("learningRate", "0.00001")
    )
    amount = learning * 1e5
    training = round(2.0 / (1.0 + amount), 4)
    return training, round(training + 0.02 * amount**2, 4)


def _patch_bedrock_jobs() -> None:
    from moto.bedrock import models as bedrock
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    original_create = bedrock.BedrockBackend.create_model_customization_job
    original_get = bedrock.BedrockBackend.get_model_customization_job
    original_stop = bedrock.BedrockBackend.stop_model_customization_job
    original_delete = bedrock.BedrockBackend.delete_custom_model

    def create_job(self: Any, *args: Any, **kwargs: Any) -> str:
        arn: str = original_create(self, *args, **kwargs)
        job = self.model_customization_jobs[arn.rsplit("/", 1)[-1]]
        model = self.custom_models[job.custom_model_name]
        job.output_model_name, job.output_model_arn = model.model_name, model.model_arn
        return arn

    def complete(self: Any, job: Any) -> None:
        job.status = "Completed"
        training, validation = local_losses(job.hyper_parameters or {})
        job.training_metrics = {"trainingLoss": training}
        job.validation_metrics = [{"validationLoss": validation}] if job.validation_data_config else []
        model = self.custom_models.get(job.custom_model_name)
        if model is not None:
            model.training_metrics, model.validation_metrics = job.training_metrics, job.validation_metrics
        bucket, _, prefix = job.output_data_config["s3Uri"].removeprefix("s3://").partition("/")
        folder = f"{prefix.rstrip('/')}/model-customization-job-{job.job_name}/".lstrip("/")
        steps = f"step_number,epoch_number,training_loss\n1,1,{training}\n"
        files = {"training_artifacts/step_wise_training_metrics.csv": steps}
        if job.validation_data_config:
            name = "validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv"
            files[name] = f"step_number,validation_loss\n1,{validation}\n"
        s3 = s3_backends[self.account_id][get_partition(self.region_name)]
        for name, text in files.items():
            try:
                s3.put_object(bucket, folder + name, text.encode())
            except Exception:  # noqa: BLE001 - no such bucket locally: the job record still has the losses
                logging.getLogger(__name__).debug("no metrics files for %s", job.job_name)

    def get_job(self: Any, job_identifier: str) -> Any:
        job: Any = original_get(self, _job_name(job_identifier))
        checks = getattr(job, "sluice_checks", 0) + 1
        job.sluice_checks = checks
        if job.status == "InProgress" and checks >= JOB_CHECKS_TO_COMPLETE:
            complete(self, job)
        if job.status != "Failed":
            job.failure_message = None  # moto reports a failure message on every job
        return job

    def stop_job(self: Any, job_identifier: str) -> None:
        original_stop(self, _job_name(job_identifier))

    def delete_model(self: Any, model_identifier: str) -> None:
        name = unquote(model_identifier)
        model = next((m for m in self.custom_models.values() if m.model_arn == name), None)
        original_delete(self, model.model_name if model is not None else name)

    bedrock.BedrockBackend.create_model_customization_job = create_job  # type: ignore[method-assign]
    bedrock.BedrockBackend.get_model_customization_job = get_job  # type: ignore[method-assign]
    bedrock.BedrockBackend.stop_model_customization_job = stop_job  # type: ignore[method-assign]
    bedrock.BedrockBackend.delete_custom_model = delete_model  # type: ignore[method-assign]


class _MarkerKey:
    """The shape of key notifications.send_event expects, for a delete marker."""

    def __init__(self, name: str, version_id: str) -> None:
        self.name = name
        self.version_id = version_id
        self.etag = ""
        self.size = 0


def _send_delete_marker_event(account_id: str, bucket: Any, key_name: str, marker: Any) -> None:
    from moto.s3 import notifications

    notifications.send_event(
        account_id,
        notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
        bucket,
        _MarkerKey(key_name, str(marker.version_id)),
    )
