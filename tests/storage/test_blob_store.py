"""The key rules, hashing helpers and errors every blob store shares."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from bulkorder.storage.blob_store import content_key, expected_sha256, sha256_hex, validate_key, verify
from bulkorder.storage.errors import (
    BatchFormatError,
    BlobIntegrityError,
    BlobNotFoundError,
    BlobTooLargeError,
    InvalidBlobKeyError,
    StorageError,
    TransientStoreError,
)

SHA = hashlib.sha256(b"hello").hexdigest()

BAD_KEYS = [
    "",
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a/..",
    "A/B",
    "batches/AB",
    "a//b",
    "a/",
    ".hidden",
    "a/.tmp-1",
    "a\\b",
    "a b",
    "x" * 513,
]


def test_sha256_hex_is_the_hex_digest() -> None:
    assert sha256_hex(b"hello") == SHA
    assert sha256_hex(memoryview(b"hello")) == SHA


def test_content_key_fans_out_by_the_first_two_digits() -> None:
    assert content_key(SHA) == f"batches/{SHA[:2]}/{SHA}"
    assert content_key(SHA, prefix="reports/v1") == f"reports/v1/{SHA[:2]}/{SHA}"
    assert content_key(SHA, prefix="") == f"{SHA[:2]}/{SHA}"


@pytest.mark.parametrize("bad", ["abc", SHA.upper(), SHA[:-1] + "g", SHA + "0"])
def test_content_key_refuses_what_is_not_a_sha256(bad: str) -> None:
    with pytest.raises(InvalidBlobKeyError, match="not a sha-256"):
        content_key(bad)


@pytest.mark.parametrize("key", ["a", "batches/ab/" + SHA, "reports/order-1.json", "x" * 512, "a_b/c-d/e.f"])
def test_validate_key_accepts_lower_case_paths(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_refuses_traversal_and_foreign_keys(key: str) -> None:
    with pytest.raises(InvalidBlobKeyError, match="not a valid blob key") as info:
        validate_key(key)
    assert isinstance(info.value, ValueError)


def test_validate_key_refuses_non_strings() -> None:
    with pytest.raises(InvalidBlobKeyError):
        validate_key(None)
    with pytest.raises(InvalidBlobKeyError):
        validate_key(b"abc")


def test_expected_sha256_reads_the_last_segment_of_content_keys_only() -> None:
    assert expected_sha256(content_key(SHA)) == SHA
    assert expected_sha256(SHA) == SHA
    assert expected_sha256("reports/order-1.json") is None
    assert expected_sha256(f"batches/{SHA}/meta") is None
    assert expected_sha256(f"batches/{SHA.upper()}") is None


def test_verify_accepts_matching_bytes_and_ignores_other_keys() -> None:
    verify(content_key(SHA), b"hello")
    verify("reports/x.json", b"anything at all")


def test_verify_names_key_and_hashes_on_mismatch() -> None:
    key = content_key(SHA)
    with pytest.raises(BlobIntegrityError) as info:
        verify(key, b"jello", "folder /tmp/x")
    err = info.value
    assert (err.key, err.expected, err.actual) == (key, SHA, sha256_hex(b"jello"))
    assert key in str(err) and "folder /tmp/x" in str(err) and "corrupt" in str(err)


def test_blob_not_found_is_a_readable_key_error() -> None:
    err = BlobNotFoundError("a/b", "folder /data", context="batch 'b1'")
    assert isinstance(err, KeyError) and isinstance(err, StorageError)
    # KeyError would print "\"blob 'a/b' ...\"": the message must read as written.
    assert str(err) == "batch 'b1': blob 'a/b' not found in folder /data"
    assert err.key == "a/b"


@pytest.mark.parametrize(
    "err",
    [
        BlobNotFoundError("a/b", "folder /data", context="batch 'b1'"),
        BlobIntegrityError("a/b", "e" * 64, "f" * 64, "s3://x/", context="batch 'b1'"),
        BlobTooLargeError("a/b", 5000, 100, "s3://x/", context="batch 'b1'"),
        BlobTooLargeError("a/b", None, 100),
    ],
)
def test_errors_survive_pickling(err: Exception) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.key == err.key  # type: ignore[attr-defined]


def test_verify_checks_the_reference_hash_whatever_the_key() -> None:
    verify("reports/plain", b"hello", sha256=SHA)
    with pytest.raises(BlobIntegrityError) as info:
        verify("batches/1d/v" + SHA, b"other", sha256=SHA)  # the key looks content-addressed, is not
    assert info.value.expected == SHA
    with pytest.raises(BlobIntegrityError):  # the key's own hash is still checked, as an extra
        verify(content_key(SHA), b"other", sha256=sha256_hex(b"other"))


def test_blob_too_large_says_key_and_both_sizes() -> None:
    err = BlobTooLargeError("a/b", 5000, 100, "folder /data", context="batch 'b1'")
    assert isinstance(err, BatchFormatError)  # readers that reject unreadable batches reject it
    assert str(err) == (
        "batch 'b1': blob 'a/b' in folder /data is 5000 bytes, larger than the 100 bytes its reference allows; "
        "refused without reading it"
    )
    assert "is more than 100 bytes" in str(BlobTooLargeError("a/b", None, 100))


def test_error_classes_say_what_callers_can_catch() -> None:
    assert issubclass(BatchFormatError, ValueError) and issubclass(BatchFormatError, StorageError)
    assert issubclass(InvalidBlobKeyError, ValueError)
    assert issubclass(TransientStoreError, StorageError)
    assert not issubclass(BlobIntegrityError, TransientStoreError)
