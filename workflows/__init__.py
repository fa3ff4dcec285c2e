"""Temporal side of bulkorder: the order workflow, its activities, worker and client.

Workflow code imports only :mod:`bulkorder.workflows.messages` and the standard-library-only domain
modules; everything that does I/O lives in :mod:`bulkorder.workflows.activities`.
"""
