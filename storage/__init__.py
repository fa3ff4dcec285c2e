"""Where the big things live: blob stores, the batch format, event-store settings.

Items never travel through Temporal: they are encoded as immutable, content-addressed
batches (:mod:`storage.batch_codec`), written to a blob store (:mod:`storage.folder_store`
or :mod:`storage.s3_store`, behind :class:`storage.blob_store.BlobStore`), and named by a
:class:`domain.refs.BatchRef` (:mod:`storage.batches`).

Kept import-light on purpose (boto3 alone takes a noticeable time to import): import from
the modules themselves, e.g. ``from storage.batches import BatchStore``.
"""
