"""Where the big things live: blob stores, the batch format, event-store settings.

Items never travel through Temporal: they are encoded as immutable, content-addressed
batches (:mod:`bulkorder.storage.batch_codec`), written to a blob store (:mod:`bulkorder.storage.folder_store`
or :mod:`bulkorder.storage.s3_store`, behind :class:`bulkorder.storage.blob_store.BlobStore`), and named by a
:class:`bulkorder.domain.refs.BatchRef` (:mod:`bulkorder.storage.batches`).

Kept import-light on purpose (boto3 alone takes a noticeable time to import): import from
the modules themselves, e.g. ``from bulkorder.storage.batches import BatchStore``.
"""
