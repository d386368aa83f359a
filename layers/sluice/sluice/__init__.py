"""Sluice core: extraction, cleaning, chunking, the document registry and the ingestion service.

Plain Python: no environment variables, no Powertools. Handlers in ``functions/`` wire the adapters.
"""

__version__ = "0.1.0"
