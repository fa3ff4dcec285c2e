"""A blob store in an S3 bucket (AWS, or any S3-compatible endpoint: MinIO, Ceph, moto).

One boto3 client serves every thread (boto3 clients are thread-safe; sessions are not,
so each store builds its client from its own session). Backend failures are translated:
what may pass (no connection, timeouts, 5xx, throttling) becomes
:class:`~bulkorder.storage.errors.TransientStoreError` so the caller retries; what will not
(a missing bucket, no access) becomes :class:`~bulkorder.storage.errors.StorageError` naming the
bucket and endpoint.

Writes are create-only: a HEAD skips keys that exist (the common case when an activity is
retried), and the PUT carries ``If-None-Match: *`` so two racing writers cannot both
write. An endpoint that does not implement conditional writes answers 501; the store then
stops sending the header, and racing writers may both write (the same bytes, for
content-addressed keys). Each PUT also carries ``x-amz-checksum-sha256``, so S3 rejects a
body damaged in transit. A PUT of a body up to ``head_before_put_bytes`` sends it with its
headers: botocore's ``Expect: 100-continue``, which waits a round trip for S3's go-ahead
first, is dropped for those (a larger body keeps it, and a refusal spares its upload).

Permissions: s3:GetObject, s3:PutObject, s3:DeleteObject (garbage collection) and
s3:ListBucket. Without ListBucket, S3 answers a HEAD of a missing key with 403 rather than
404, which this store must report as "access denied".
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Iterable, Iterator

from botocore.utils import determine_content_length
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
)

from bulkorder.storage.blob_store import (
    BlobInfo,
    check_max_size,
    expected_sha256,
    refuse_if_larger,
    refuse_if_read_past,
    validate_key,
    verify,
)
from bulkorder.storage.errors import (
    BlobIntegrityError,
    BlobNotFoundError,
    InvalidBlobKeyError,
    StorageError,
    TransientStoreError,
)

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem"}
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
        "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
        "ConditionalRequestConflict",  # another conditional write of the key is in flight
    }
)
_TRANSIENT_EXCEPTIONS = (HTTPClientError, BotoConnectionError, IncompleteReadError)


def _error_details(exc: ClientError) -> tuple[str, int, str]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0), str(error.get("Message", ""))


_NO_EXPECT_ID = "bulkorder-no-expect-continue-for-small-puts"


def _no_expect_for_small_bodies(limit: int) -> Any:
    def drop_expect(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name != "PutObject":
            return
        headers = params.get("headers", {})
        length = headers.get("Content-Length")
        if length is None:
            length = determine_content_length(params.get("body"))
        if "Expect" in headers and length is not None and int(length) <= limit:
            del headers["Expect"]

    return drop_expect


class S3BlobStore:
    """Blobs as objects ``{prefix}/{key}`` in ``bucket``. Safe for many threads at once.

    ``client`` injects a ready boto3 S3 client (the other connection options are then
    ignored). ``max_attempts`` is how many times botocore tries a request (the first try
    included; standard retry mode, with backoff) before a failure that may pass reaches
    the caller as :class:`TransientStoreError`.
    """

    #: Keys asked for per LIST request (S3's maximum is 1000; tests lower it).
    list_page_size: int = 1000
    #: Bodies up to this size go straight to a create-only PUT (``If-None-Match: *``), with
    #: no HEAD first: below about 1 MiB, the HEAD's round trip costs about what the upload
    #: it might save does.
    head_before_put_bytes: int = 1024 * 1024

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        max_pool_connections: int = 32,
        create_bucket: bool = False,
        max_attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        prefix = prefix.strip("/")
        if ".." in prefix.split("/"):
            raise InvalidBlobKeyError(f"S3 prefix {prefix!r} must not contain '..' segments")
        self.bucket = bucket
        self.prefix = prefix
        self._key_prefix = f"{prefix}/" if prefix else ""
        self._conditional_put = True
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                max_pool_connections=max_pool_connections,
                # total_max_attempts counts the first try ("max_attempts" here would not).
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
            )
        self.client = client
        # Last (on the same event, so after botocore's own handler, which asks every PutObject to wait for
        # "100 Continue" before sending its body): that is a round trip more, on S3 too,
        # which a small body does not repay. Registered once per client, however many stores share it.
        client.meta.events.register_last(
            "before-call.s3", _no_expect_for_small_bodies(self.head_before_put_bytes), unique_id=_NO_EXPECT_ID
        )
        self.endpoint_url: str = str(client.meta.endpoint_url)
        if create_bucket:
            self.ensure_bucket()

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} (endpoint {self.endpoint_url})"

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"

    def object_key(self, key: str) -> str:
        """The S3 object key that holds blob ``key``."""
        return self._key_prefix + validate_key(key)

    # Errors.

    def _error(self, exc: Exception, action: str) -> StorageError:
        """Translate a boto3/botocore failure of ``action`` into a storage error."""
        if isinstance(exc, ClientError):
            code, status, message = _error_details(exc)
            detail = f"{code}: {message}" if message else code
            if code == "NoSuchBucket":
                return StorageError(
                    f"cannot {action}: bucket {self.bucket!r} does not exist at {self.endpoint_url}"
                )
            if status == 403 or code in _DENIED_CODES:
                return StorageError(
                    f"cannot {action}: access to bucket {self.bucket!r} at {self.endpoint_url} "
                    f"denied ({detail}); check the credentials and the bucket policy"
                )
            if status >= 500 or status in (408, 429) or code in _TRANSIENT_CODES:
                return TransientStoreError(f"cannot {action} in {self.location}: HTTP {status} {detail}")
            return StorageError(f"cannot {action} in {self.location}: HTTP {status} {detail}")
        if isinstance(exc, _TRANSIENT_EXCEPTIONS):
            return TransientStoreError(f"cannot {action}: {self.location} did not answer: {exc}")
        return StorageError(f"cannot {action} in {self.location}: {exc}")

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _error_details(exc)[0] in _NOT_FOUND_CODES:
                return None
            raise self._error(exc, f"look up blob {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"look up blob {key!r}") from exc
        return response

    # The BlobStore protocol.

    def put(self, key: str, data: bytes) -> bool:
        must_head = len(data) > self.head_before_put_bytes or not self._conditional_put
        if must_head and self._head(key) is not None:
            return False
        digest = hashlib.sha256(data).digest()
        expected = expected_sha256(key)
        if expected is not None and digest.hex() != expected:
            # We hash anyway (for S3's checksum), so refuse bytes get() would refuse later.
            raise BlobIntegrityError(key, expected, digest.hex(), self.location, context="refusing to write")
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "Body": data,
            "ContentLength": len(data),
            "ChecksumSHA256": base64.b64encode(digest).decode("ascii"),
        }
        if self._conditional_put:
            request["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**request)
        except ClientError as exc:
            code, status, _ = _error_details(exc)
            if status == 412 or code == "PreconditionFailed":
                return False  # another writer created the key since our HEAD
            if self._conditional_put and (status == 501 or code == "NotImplemented"):
                self._conditional_put = False
                return self.put(key, data)
            raise self._error(exc, f"write blob {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"write blob {key!r}") from exc
        return True

    def get(self, key: str, *, sha256: str | None = None, max_size: int | None = None) -> bytes:
        """The object's bytes. With ``max_size``, the GET response's ``Content-Length``
        is checked before any of the body is read, and at most ``max_size + 1`` bytes
        are read from the stream whatever the length says; an object over the limit is
        refused and its connection dropped."""
        check_max_size(max_size, key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                refuse_if_larger(key, int(length) if length is not None else None, max_size, self.location)
                data: bytes = body.read() if max_size is None else body.read(max_size + 1)
                refuse_if_read_past(key, data, max_size, self.location)
            except BaseException:
                # Drop the connection rather than drain a body we refuse. (A body read to
                # its end has already gone back to the pool: no close on that path.)
                body.close()
                raise
        except ClientError as exc:
            code, _, _ = _error_details(exc)
            if code in _NOT_FOUND_CODES:
                raise BlobNotFoundError(key, self.location) from None
            raise self._error(exc, f"read blob {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"read blob {key!r}") from exc
        verify(key, data, self.location, sha256=sha256)
        return data

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        response = self._head(key)
        if response is None:
            raise BlobNotFoundError(key, self.location)
        return int(response["ContentLength"])

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _error_details(exc)[0] in _NOT_FOUND_CODES:
                return
            raise self._error(exc, f"delete blob {key!r}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"delete blob {key!r}") from exc

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        for info in self.iter_blob_infos(prefix):
            yield info.key

    def iter_blob_infos(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Listed page by page (``list_objects_v2`` paginator, ``list_page_size`` keys per
        request): memory holds one page whatever the bucket's size."""
        paginator = self.client.get_paginator("list_objects_v2")
        start = len(self._key_prefix)
        try:
            for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=self._key_prefix + prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                for item in page.get("Contents", ()):
                    key = item["Key"][start:]
                    try:
                        validate_key(key)
                    except InvalidBlobKeyError:
                        continue  # not ours (folder markers, other tools' objects)
                    yield BlobInfo(key, int(item.get("Size", 0)), item["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"list blobs under {prefix!r}") from exc

    #: Keys per DeleteObjects request (S3's maximum is 1000).
    delete_batch_size: int = 1000

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` with DeleteObjects, ``delete_batch_size`` keys per request
        (quiet mode: S3 answers only with the keys it could not delete, which raise)."""
        requests = 0
        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": self.object_key(key)})
            if len(batch) >= self.delete_batch_size:
                self._delete_objects(batch)
                requests += 1
                batch = []
        if batch:
            self._delete_objects(batch)
            requests += 1
        return requests

    def _delete_objects(self, batch: list[dict[str, str]]) -> None:
        try:
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"delete {len(batch)} blobs") from exc
        errors = [e for e in response.get("Errors", ()) if e.get("Code") not in _NOT_FOUND_CODES]
        if errors:
            first = errors[0]
            raise StorageError(
                f"cannot delete {len(errors)} of {len(batch)} blobs in {self.location}: "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message', '')}".rstrip()
            )

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for tests and the embedded stack)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_details(exc)[0] not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise self._error(exc, "look up the bucket") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "look up the bucket") from exc
        request: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**request)
        except ClientError as exc:
            if _error_details(exc)[0] != "BucketAlreadyOwnedByYou":
                raise self._error(exc, "create the bucket") from exc
        except BotoCoreError as exc:
            raise self._error(exc, "create the bucket") from exc
