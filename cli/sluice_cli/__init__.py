"""The ``sluice`` developer and operator tool. Dev-only: never shipped in the Lambda layer."""
