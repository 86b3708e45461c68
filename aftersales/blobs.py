"""Where attachment bytes live: a directory, or any S3-compatible object store.

Blobs are named by the SHA-256 of their bytes, so the same photo sent twice is stored
once, a name can be checked against its bytes, and nothing else (case, customer, file
name) appears in the store. A case records the hashes it holds; the bytes are stored
first and the case records them afterwards, so an unreferenced blob may simply be one a
case is about to record: `sweep` deletes only those stored before a cutoff.

Both stores are safe to share between threads: a file store's writes are atomic renames,
and boto3's clients are thread-safe.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BlobMissing", "BlobStore", "FileStore", "S3Store", "check_sha", "make_store",
           "sweep"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
S3_PREFIX = "blobs/"
DEFAULT_REGION = "us-east-1"


class BlobMissing(LookupError):
    """No blob with this hash in the store."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no blob {sha256}")
        self.sha256 = sha256


class BlobStore(Protocol):
    def put(self, data: bytes, content_type: str) -> str:
        """Store the bytes; their SHA-256 (hex). The same bytes again change nothing but
        the time they count as stored (so a sweep leaves them to the case recording them)."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes; BlobMissing if there are none."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove the blob; one already gone is fine."""
        ...

    def list(self) -> Iterator[tuple[str, datetime]]:
        """Every blob's hash and when it was stored (UTC)."""
        ...


def check_sha(sha256: str) -> str:
    """The hash if it is 64 lowercase hex digits; ValueError otherwise (never a path)."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256


def make_store(settings: Any) -> BlobStore:
    """The store the settings name: `file` under data_dir/blobs, or `s3`."""
    if settings.blob_store == "file":
        return FileStore(Path(settings.data_dir) / "blobs")
    if settings.blob_store == "s3":
        return S3Store(settings.s3_bucket, settings.s3_endpoint or None)
    raise ValueError(f"unknown blob store {settings.blob_store!r}: expected file or s3")


def sweep(store: BlobStore, referenced: set[str], stored_before: datetime) -> list[str]:
    """Delete the blobs no case references that were stored before the cutoff; their hashes.

    Younger ones stay: their bytes may have been stored for a case not yet recording them.
    """
    doomed = [sha for sha, stored in store.list()
              if sha not in referenced and stored < stored_before]
    for sha in doomed:
        store.delete(sha)
    return doomed


class FileStore:
    """Blobs as files root/ab/cd/<sha256>; written to a temporary name, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        check_sha(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, content_type: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if final.exists():
            try:
                os.utime(final)  # stored again: young for sweep's purposes
                return sha
            except FileNotFoundError:
                pass  # swept meanwhile: write it again
        final.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, so the rename is atomic: a reader or a crash sees either no blob
        # or the whole one, never part of it under the final name.
        fd, temporary = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, final)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[tuple[str, datetime]]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*"):
            if not _SHA256.fullmatch(path.name) or path.parent.parent.name != path.name[:2]:
                continue  # a temporary file, or something that is not ours
            try:
                stored = path.stat().st_mtime
            except FileNotFoundError:
                continue  # deleted while listing
            yield path.name, datetime.fromtimestamp(stored, UTC)


class S3Store:
    """Blobs as objects blobs/<sha256> in one bucket, created on first use if missing.

    Credentials and region come the boto3 way (AWS_* variables, ~/.aws, instance roles);
    without a region, us-east-1. `endpoint_url` points at MinIO, or another provider's
    S3 API, addressed path-style.
    """

    page_size = 1000  # objects a list request asks for (S3's most)

    def __init__(self, bucket: str, endpoint_url: str | None = None,
                 client: Any = None) -> None:
        self.bucket = bucket
        self.client = client if client is not None else _client(endpoint_url)
        self._ready = False
        self._lock = threading.Lock()

    def put(self, data: bytes, content_type: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self._ensure_bucket()
        key = S3_PREFIX + sha
        if self.exists(sha):
            # Already there: copied onto itself to become young for sweep's purposes,
            # without sending the bytes again.
            try:
                self.client.copy_object(
                    Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                    MetadataDirective="REPLACE", ContentType=content_type)
                return sha
            except self.client.exceptions.ClientError as exc:
                if not _missing(exc):
                    raise
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return sha

    def get(self, sha256: str) -> bytes:
        key = S3_PREFIX + check_sha(sha256)
        self._ensure_bucket()
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                raise BlobMissing(sha256) from None
            raise
        body = response["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def exists(self, sha256: str) -> bool:
        key = S3_PREFIX + check_sha(sha256)
        self._ensure_bucket()
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def delete(self, sha256: str) -> None:
        key = S3_PREFIX + check_sha(sha256)
        self._ensure_bucket()
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def list(self) -> Iterator[tuple[str, datetime]]:
        self._ensure_bucket()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=S3_PREFIX,
            PaginationConfig={"PageSize": self.page_size})
        for page in pages:
            for item in page.get("Contents", ()):
                sha = item["Key"][len(S3_PREFIX):]
                if _SHA256.fullmatch(sha):
                    yield sha, item["LastModified"].astimezone(UTC)

    def _ensure_bucket(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except self.client.exceptions.ClientError as exc:
                if not _missing(exc):
                    raise
                self._create_bucket()
            self._ready = True

    def _create_bucket(self) -> None:
        region = self.client.meta.region_name or DEFAULT_REGION
        options: dict[str, Any] = {}
        if region != DEFAULT_REGION:
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **options)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass  # another process created it first


def _client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    config = Config(
        # Path-style for MinIO and other S3 APIs without virtual-host DNS; checksums only
        # where S3 requires them, since not every S3-compatible store takes the new ones.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard"},
    )
    return session.client("s3", endpoint_url=endpoint_url,
                          region_name=session.region_name or DEFAULT_REGION, config=config)


def _missing(exc: Any) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("404", "NoSuchKey", "NoSuchBucket", "NotFound") or status == 404
