"""A Bedrock fine-tune, the parts that run in Lambda: the execution input checked before any data
is read (``settings``), the base-model families and their limits (``families``), the training data
parsed, converted to the family's format, checked and split (``dataset``), the comparison of the
custom model with its base model on held-out prompts (``evaluation``), the answers scored against
the references by exact match, token F1 and ROUGE-L and the decision made (``scoring``), the
prompts of a batch inference job checked and written as Bedrock reads them (``batch``), and the
workflow's Lambda steps over them (``workflow``), which reach S3 and Bedrock only through the ports
they are given.

The fine-tune function reads the corpus and writes the JSONL to S3; the state machine starts and
watches the customization, judge (evaluation) and batch inference jobs.
"""
