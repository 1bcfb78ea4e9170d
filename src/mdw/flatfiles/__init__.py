"""The vendor's flat files: the key layout (``keys``), the S3 client (``s3``) and the decoder (``decode``).

Like :mod:`mdw.polygon` for the REST API, this package knows the vendor's side only: it never
imports the store or the backfill. The backfill ingests through a file-source seam, and imports
``s3`` (obstore) nowhere, so loading the planner never loads the S3 client.
"""
