"""One contract for both blob stores (aftersales/blobs.py): a directory, and S3 spoken over
HTTP to moto's server on 127.0.0.1 (the same boto3 calls MinIO or AWS would get)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from aftersales.blobs import (
    BlobMissing,
    BlobStore,
    FileStore,
    S3Store,
    check_sha,
    make_store,
    sweep,
)
from aftersales.settings import Settings

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            assert server._server is not None
            yield f"http://127.0.0.1:{server._server.server_port}"
        finally:
            server.stop()


_buckets = iter(range(1_000_000))


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> BlobStore:
    if request.param == "file":
        return FileStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(f"blobs-{next(_buckets)}", endpoint_url=endpoint)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_get_exists_delete(store):
    data = b"\xff\xd8\xff a photo of a cracked screen"
    name = store.put(data, "image/jpeg")
    assert name == sha(data)
    assert store.exists(name)
    assert store.get(name) == data
    store.delete(name)
    assert not store.exists(name)
    with pytest.raises(BlobMissing) as caught:
        store.get(name)
    assert caught.value.sha256 == name
    store.delete(name)  # already gone: fine


def test_the_same_bytes_are_stored_once(store):
    data = b"%PDF-1.4 receipt"
    assert store.put(data, "application/pdf") == store.put(data, "application/pdf")
    assert [name for name, _ in store.list()] == [sha(data)]
    assert store.get(sha(data)) == data


def test_list_names_every_blob_with_when_it_was_stored(store):
    before = datetime.now(UTC) - timedelta(seconds=5)
    names = {store.put(f"blob {i}".encode(), "application/octet-stream") for i in range(3)}
    listed = dict(store.list())
    assert set(listed) == names
    for stored in listed.values():
        assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
        assert before <= stored <= datetime.now(UTC) + timedelta(seconds=5)


def test_an_empty_store_lists_nothing(store):
    assert list(store.list()) == []
    assert not store.exists(sha(b"nothing"))


@pytest.mark.parametrize("bad", ["../x", "../" + "a" * 61, "A" * 64, "a" * 63, "a" * 65,
                                 "g" * 64, "", "a" * 62 + "/x", "a" * 64 + "\n"])
def test_hashes_are_checked_before_any_path_or_key_is_built(store, bad):
    for operation in (store.get, store.exists, store.delete):
        with pytest.raises(ValueError):
            operation(bad)


def test_sweep_keeps_referenced_and_young_blobs(store):
    kept = store.put(b"on a case", "image/png")
    orphan = store.put(b"no case", "image/png")
    # Cutoff now-ish in the past: both are young, nothing goes.
    assert sweep(store, {kept}, datetime.now(UTC) - timedelta(hours=1)) == []
    # Cutoff in the future: both count as old; only the unreferenced one goes.
    assert sweep(store, {kept}, datetime.now(UTC) + timedelta(hours=1)) == [orphan]
    assert store.exists(kept) and not store.exists(orphan)


def test_concurrent_puts_and_reads(store) -> None:
    blobs = [f"photo {i}".encode() * 100 for i in range(8)]
    errors: list[BaseException] = []

    def work(data: bytes) -> None:
        try:
            for _ in range(3):
                assert store.get(store.put(data, "image/jpeg")) == data
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(data,)) for data in blobs * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert {name for name, _ in store.list()} == {sha(data) for data in blobs}


# --- the file store ------------------------------------------------------------------------

def test_file_store_layout_and_sweep_by_age(tmp_path):
    import os

    store = FileStore(tmp_path)
    name = store.put(b"bytes", "text/plain")
    path = tmp_path / name[:2] / name[2:4] / name
    assert path.read_bytes() == b"bytes"
    old = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(path, (old, old))
    assert sweep(store, set(), datetime.now(UTC) - timedelta(days=1)) == [name]
    assert not path.exists()


def test_file_store_storing_again_makes_a_blob_young(tmp_path):
    import os

    store = FileStore(tmp_path)
    name = store.put(b"sent again", "text/plain")
    path = store.path(name)
    old = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    os.utime(path, (old, old))
    store.put(b"sent again", "text/plain")
    assert sweep(store, set(), datetime.now(UTC) - timedelta(days=1)) == []


def test_file_store_ignores_temporary_and_foreign_files(tmp_path):
    store = FileStore(tmp_path)
    name = store.put(b"real", "text/plain")
    (tmp_path / name[:2] / name[2:4] / ".incoming-abc").write_bytes(b"half")
    (tmp_path / "README").write_text("not a blob")
    other = sha(b"elsewhere")
    (tmp_path / "00" / "00").mkdir(parents=True)
    (tmp_path / "00" / "00" / other).write_bytes(b"misplaced")
    assert [n for n, _ in store.list()] == [name]


def test_a_failed_write_leaves_no_blob(tmp_path, monkeypatch):
    import os

    store = FileStore(tmp_path)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"never whole", "text/plain")
    monkeypatch.undo()
    assert not store.exists(sha(b"never whole"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_check_sha():
    assert check_sha("a" * 64) == "a" * 64
    with pytest.raises(ValueError):
        check_sha("../../etc/passwd")


# --- S3 ------------------------------------------------------------------------------------

def test_s3_objects_are_keyed_by_hash_with_their_content_type(s3_endpoint):
    store = S3Store("typed", endpoint_url=s3_endpoint)
    name = store.put(b"\x89PNG...", "image/png")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    head = client.head_object(Bucket="typed", Key=f"blobs/{name}")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(b"\x89PNG...")
    client.put_object(Bucket="typed", Key="elsewhere/x", Body=b"not ours")
    assert [n for n, _ in store.list()] == [name]


def test_s3_store_uses_an_existing_bucket_and_a_given_client(s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="existing")
    store = S3Store("existing", client=client)
    name = store.put(b"hello", "text/plain")
    assert S3Store("existing", endpoint_url=s3_endpoint).get(name) == b"hello"


def test_s3_lists_across_pages(s3_endpoint):
    store = S3Store("paged", endpoint_url=s3_endpoint)
    store.page_size = 3
    names = {store.put(f"{i}".encode(), "text/plain") for i in range(10)}
    assert {n for n, _ in store.list()} == names


# --- settings ------------------------------------------------------------------------------

def test_make_store_follows_the_settings(tmp_path, s3_endpoint):
    file_store = make_store(Settings(data_dir=str(tmp_path)))
    assert isinstance(file_store, FileStore) and file_store.root == Path(tmp_path) / "blobs"
    s3 = make_store(Settings(blob_store="s3", s3_endpoint=s3_endpoint, s3_bucket="made"))
    assert isinstance(s3, S3Store) and s3.bucket == "made"
    assert s3.get(s3.put(b"via settings", "text/plain")) == b"via settings"
