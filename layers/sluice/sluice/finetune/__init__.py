"""The dataset side of a Bedrock fine-tune: the execution input checked before any data is read
(``settings``), the base-model families and their limits (``families``), and the training data
parsed, converted to the family's format, checked and split (``dataset``).

Pure code: the fine-tune functions read the corpus and write the JSONL to S3; the state machine
starts and watches the customization job.
"""
