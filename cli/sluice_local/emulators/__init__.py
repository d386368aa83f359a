"""Bedrock Agent, Bedrock Agent Runtime, Kendra and the parts of Bedrock moto lacks, answered
in-process for the local stack.

AWS has no local edition of these services and moto does not cover the calls the sinks make. So
the local stack installs a botocore hook in its function workers (and `sluice search --local` in
itself): botocore still builds every request and validates it against the service's own model (a
wrong parameter fails here as it would in AWS); then, instead of sending it, the emulator answers
from a SQLite database whose FTS5 tables hold the chunks and documents it was given, checks its
answer against the model's output shape too, and appends the call to a JSON Lines log that the
demo summarises. Several processes share the database (SQLite locks it) and the log (appends).

One module per service (``knowledge_base``: Bedrock Agent and Agent Runtime, with its retrieval
``filters``; ``vectors``: S3 Vectors; ``kendra``; ``bedrock``: provisioned throughput, on-demand
custom model deployments and the model catalogue), what they share in ``common`` (the assumptions a
test may break, among them), the botocore hooks in ``hooks``.

Dev-only: never in the Lambda layer.
"""

from sluice_local.emulators.common import ASSUMPTIONS, CALLS_FILE, DB_FILE, read_calls
from sluice_local.emulators.hooks import Emulator, install, installed, route_lambda, uninstall
from sluice_local.emulators.kendra import LOCAL_KENDRA_FIELDS

__all__ = [
    "ASSUMPTIONS",
    "CALLS_FILE",
    "DB_FILE",
    "LOCAL_KENDRA_FIELDS",
    "Emulator",
    "install",
    "installed",
    "read_calls",
    "route_lambda",
    "uninstall",
]
