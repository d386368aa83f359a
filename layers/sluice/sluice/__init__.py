"""Sluice, shipped as the Lambda layer: the core (plain Python over ports: no boto3, no Powertools, no
environment variables), its AWS adapters (``sluice.adapters.aws``) and the composition root that wires
them for each function (``sluice.bootstrap``). docs/architecture.md describes the layers.
"""

__version__ = "0.2.0"
