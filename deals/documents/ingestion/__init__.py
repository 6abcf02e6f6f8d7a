"""Document ingestion: sniffing, digitization, crops, deal intel and the intake summary.

The Celery task (deals.tasks.ingest_document) drives it; other apps read its results only through
deals.intel.
"""
