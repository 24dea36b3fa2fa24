"""Fetching challenge model zips: atomic download, sha256 checks, safe extraction. No network:
zips are built in ``tmp_path`` and fetched through ``file://`` URLs or fake openers."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import stat
import urllib.error
import urllib.request
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.model_download import (OFFICIAL_MODELS, FetchedModel, ModelSource,
                                                   download, fetch_model, safe_extract,
                                                   sha256_of, verify_sha256)

STATE = (b'model_checkpoint_path: "checkpoint-99900"\n'
         b'all_model_checkpoint_paths: "checkpoint-99900"\n')
# latest_checkpoint only needs the .index file to exist, so arbitrary bytes stand in for it.
GOOD_MEMBERS = {
    "secret/checkpoint": STATE,
    "secret/checkpoint-99900.index": b"index bytes \x00\x01\x02" * 10,
    "secret/checkpoint-99900.data-00000-of-00001": bytes(range(256)) * 40,
}


# --------------------------------------------------------------------------- helpers

def make_zip(path: Path, members: dict[str, bytes],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def make_symlink_zip(path: Path, name: str, target: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: external_attr holds st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, target)
    return path


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text and "\r" not in text
    return text


class CountingOpener:
    """urlopen that records the URLs it was asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        return urllib.request.urlopen(url, timeout=timeout)


class FakeResponse(io.RawIOBase):
    """An HTTP-like response: serves ``body``, then optionally fails; announces a length."""

    def __init__(self, body: bytes, *, length: int | None = None, fail_after: int | None = None,
                 status: int = 200) -> None:
        self._data = io.BytesIO(body)
        self._fail_after = fail_after
        self.status = status
        self.headers = Message()
        if length is not None:
            self.headers["Content-Length"] = str(length)

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._data.tell() >= self._fail_after:
            raise ConnectionResetError(104, "Connection reset by peer")
        limit = n if self._fail_after is None else min(n, self._fail_after - self._data.tell())
        return self._data.read(limit)


@pytest.fixture()
def good_zip(tmp_path) -> Path:
    return make_zip(tmp_path / "server" / "secret.zip", GOOD_MEMBERS)


# --------------------------------------------------------------------------- official models

def test_official_secret_digest_matches_the_shared_data_readme(shared_data):
    text = (shared_data / "README.md").read_text(encoding="utf-8")
    match = re.search(r"Official sha256.*?\b([0-9a-f]{64})\b", text, re.DOTALL)
    assert match, "README.md has no 'Official sha256 ... <64 hex>' line"
    assert OFFICIAL_MODELS["secret"].sha256 == match.group(1)


def test_official_models_are_the_released_zips_and_only_mnist_secret_has_a_digest():
    assert set(OFFICIAL_MODELS) == {"secret", "adv_trained", "natural",
                                    "cifar10_adv_trained", "cifar10_natural"}
    for name, source in OFFICIAL_MODELS.items():
        assert isinstance(source, ModelSource)
        if name.startswith("cifar10_"):
            assert source.url == ("https://github.com/MadryProj/cifar10_challenge_models/raw/"
                                  f"master/{name[len('cifar10_'):]}.zip")
            assert source.filename == f"{name}.zip"
        else:
            assert source.url == ("https://github.com/MadryLab/mnist_challenge_models/raw/"
                                  f"master/{name}.zip")
        assert (source.sha256 is None) == (name != "secret")


def test_cifar10_zip_is_stored_under_its_own_name_beside_the_mnist_one(tmp_path, good_zip):
    body = good_zip.read_bytes()
    urls = []

    def opener(url, timeout=None):
        urls.append(url)
        return FakeResponse(body, length=len(body))

    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "adv_trained.zip").write_bytes(b"the MNIST model's zip: must not be reused")
    fetched = fetch_model("cifar10_adv_trained", dest, opener=opener)
    assert urls == [OFFICIAL_MODELS["cifar10_adv_trained"].url]
    assert fetched.zip_path == dest / "cifar10_adv_trained.zip"
    assert fetched.zip_path.read_bytes() == body and not fetched.verified
    assert (dest / "adv_trained.zip").read_bytes().startswith(b"the MNIST")


def test_fetch_by_official_name_uses_its_url_and_published_digest(tmp_path, good_zip):
    urls = []

    def opener(url, timeout=None):
        urls.append(url)
        body = good_zip.read_bytes()
        return FakeResponse(body, length=len(body))

    dest = tmp_path / "models"
    with pytest.raises(CompatError) as err:  # our test zip is not the real secret model
        fetch_model("secret", dest, opener=opener)
    assert urls == [OFFICIAL_MODELS["secret"].url]
    assert OFFICIAL_MODELS["secret"].sha256 in assert_one_line(err)
    assert sorted(p.name for p in dest.iterdir()) == ["secret.zip"]  # nothing extracted


def test_explicit_sha256_overrides_the_published_digest(tmp_path, good_zip):
    body = good_zip.read_bytes()
    fetched = fetch_model("secret", tmp_path / "models", sha256=sha256_hex(good_zip).upper(),
                          opener=lambda url, timeout=None: FakeResponse(body, length=len(body)))
    assert fetched.verified and fetched.sha256 == sha256_hex(good_zip)


def test_unknown_model_name_is_refused_listing_the_known_ones(tmp_path):
    with pytest.raises(CompatError) as err:
        fetch_model("robust", tmp_path)
    text = assert_one_line(err)
    assert "'robust'" in text and "secret" in text and "adv_trained" in text


# --------------------------------------------------------------------------- fetch_model

def test_fetch_model_downloads_verifies_and_extracts_exact_bytes(tmp_path, good_zip):
    dest = tmp_path / "models"
    opener = CountingOpener()
    fetched = fetch_model(good_zip.as_uri(), dest, sha256=sha256_hex(good_zip), opener=opener)
    assert isinstance(fetched, FetchedModel)
    assert fetched.zip_path == dest / "secret.zip"
    assert fetched.zip_path.read_bytes() == good_zip.read_bytes()
    assert fetched.sha256 == sha256_hex(good_zip) and fetched.verified
    assert fetched.model_dir == dest / "secret"
    for name, data in GOOD_MEMBERS.items():
        assert (dest / name).read_bytes() == data
    assert all_files(dest) == {dest / "secret.zip"} | {dest / n for n in GOOD_MEMBERS}
    assert opener.urls == [good_zip.as_uri()]


def test_second_fetch_reuses_the_zip_without_downloading_again(tmp_path, good_zip):
    dest = tmp_path / "models"
    opener = CountingOpener()
    first = fetch_model(good_zip.as_uri(), dest, sha256=sha256_hex(good_zip), opener=opener)
    mtime = first.zip_path.stat().st_mtime_ns
    second = fetch_model(good_zip.as_uri(), dest, sha256=sha256_hex(good_zip), opener=opener)
    assert second == first
    assert len(opener.urls) == 1
    assert second.zip_path.stat().st_mtime_ns == mtime


def test_wrong_digest_is_refused_naming_both_digests_and_nothing_is_extracted(tmp_path,
                                                                                good_zip):
    dest = tmp_path / "models"
    wrong = "0123456789abcdef" * 4
    with pytest.raises(CompatError) as err:
        fetch_model(good_zip.as_uri(), dest, sha256=wrong)
    text = assert_one_line(err)
    assert wrong in text and sha256_hex(good_zip) in text
    assert str(dest / "secret.zip") in text and "delete" in text
    assert all_files(dest) == {dest / "secret.zip"}


def test_fetch_without_known_digest_computes_logs_and_returns_it(tmp_path, good_zip, caplog):
    with caplog.at_level(logging.WARNING, logger="mnist_challenge_compat.model_download"):
        fetched = fetch_model(good_zip.as_uri(), tmp_path / "models")
    assert not fetched.verified
    assert fetched.sha256 == sha256_hex(good_zip)
    assert sha256_hex(good_zip) in caplog.text
    assert fetched.model_dir == tmp_path / "models" / "secret"


def test_malformed_sha256_argument_is_a_value_error(tmp_path, good_zip):
    with pytest.raises(ValueError):
        fetch_model(good_zip.as_uri(), tmp_path / "models", sha256="abc")


def test_zip_without_checkpoint_state_file_has_no_model_dir(tmp_path):
    bad = make_zip(tmp_path / "server" / "weights.zip", {"secret/readme.txt": b"hello"})
    with pytest.raises(CompatError) as err:
        fetch_model(bad.as_uri(), tmp_path / "models")
    text = assert_one_line(err)
    assert "weights.zip" in text and "'checkpoint' state file" in text


def test_state_file_naming_a_missing_index_is_refused(tmp_path):
    members = {k: v for k, v in GOOD_MEMBERS.items() if not k.endswith(".index")}
    bad = make_zip(tmp_path / "server" / "secret.zip", members)
    with pytest.raises(CompatError) as err:
        fetch_model(bad.as_uri(), tmp_path / "models")
    assert "checkpoint-99900.index" in assert_one_line(err)


def test_checkpoint_without_data_file_is_refused(tmp_path):
    members = {k: v for k, v in GOOD_MEMBERS.items() if ".data-" not in k}
    bad = make_zip(tmp_path / "server" / "secret.zip", members)
    with pytest.raises(CompatError) as err:
        fetch_model(bad.as_uri(), tmp_path / "models")
    assert "data-00000-of-00001" in assert_one_line(err)


def test_fetch_refuses_a_traversal_zip_without_writing_outside(tmp_path):
    evil = make_zip(tmp_path / "server" / "secret.zip",
                    {**GOOD_MEMBERS, "secret/../../evil.txt": b"pwned"})
    dest = tmp_path / "a" / "models"
    with pytest.raises(CompatError):
        fetch_model(evil.as_uri(), dest)
    assert not any(p.name == "evil.txt" for p in all_files(tmp_path))
    assert all_files(dest) == {dest / "secret.zip"}


# --------------------------------------------------------------------------- download

def test_download_copies_a_file_url_to_dest(tmp_path, good_zip):
    dest = tmp_path / "new" / "dir" / "copy.zip"
    assert download(good_zip.as_uri(), dest) == dest
    assert dest.read_bytes() == good_zip.read_bytes()
    assert all_files(dest.parent) == {dest}  # no temp file left beside it


def test_download_skips_an_existing_dest(tmp_path):
    dest = tmp_path / "already.zip"
    dest.write_bytes(b"old")

    def opener(url, timeout=None):
        raise AssertionError("must not download")

    assert download("https://example.invalid/x.zip", dest, opener=opener) == dest
    assert dest.read_bytes() == b"old"


def test_missing_file_url_fails_in_one_line_leaving_no_partial_file(tmp_path):
    url = (tmp_path / "server" / "missing.zip").as_uri()
    dest = tmp_path / "models"
    with pytest.raises(CompatError) as err:
        fetch_model(url, dest)
    text = assert_one_line(err)
    assert text.startswith(f"{url}: download failed (")
    assert all_files(tmp_path) == set()


def test_http_error_is_reported_with_status_and_reason(tmp_path):
    url = "https://example.invalid/secret.zip"

    def opener(u, timeout=None):
        raise urllib.error.HTTPError(u, 404, "Not Found", Message(), None)

    with pytest.raises(CompatError) as err:
        download(url, tmp_path / "secret.zip", opener=opener)
    assert assert_one_line(err) == f"{url}: download failed (HTTP 404 Not Found)"
    assert all_files(tmp_path) == set()


def test_connection_reset_midway_leaves_no_partial_file(tmp_path):
    body = b"x" * (3 << 20)
    url = "https://example.invalid/secret.zip"
    with pytest.raises(CompatError) as err:
        download(url, tmp_path / "secret.zip",
                 opener=lambda u, timeout=None: FakeResponse(body, fail_after=1 << 20))
    text = assert_one_line(err)
    assert text.startswith(f"{url}: download failed (") and "reset" in text
    assert all_files(tmp_path) == set()


def test_body_shorter_than_content_length_is_refused(tmp_path):
    url = "https://example.invalid/secret.zip"
    with pytest.raises(CompatError) as err:
        download(url, tmp_path / "secret.zip",
                 opener=lambda u, timeout=None: FakeResponse(b"abc", length=10))
    assert "received 3 of 10 bytes" in assert_one_line(err)
    assert all_files(tmp_path) == set()


def test_timeout_is_passed_to_the_opener(tmp_path):
    seen = []

    def opener(url, timeout=None):
        seen.append(timeout)
        return FakeResponse(b"abc", length=3)

    download("https://example.invalid/a.zip", tmp_path / "a.zip", timeout=7.5, opener=opener)
    assert seen == [7.5]


# --------------------------------------------------------------------------- digests

def test_sha256_of_streams_a_multi_chunk_file(tmp_path):
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * ((5 << 20) // 512)  # 2.5 MiB: several 1 MiB chunks
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


def test_sha256_of_a_missing_file_is_a_compat_error(tmp_path):
    with pytest.raises(CompatError) as err:
        sha256_of(tmp_path / "nope.zip")
    assert "nope.zip" in assert_one_line(err)


def test_verify_sha256_accepts_the_right_digest_in_any_case(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"payload")
    verify_sha256(path, hashlib.sha256(b"payload").hexdigest().upper())


def test_verify_sha256_mismatch_names_file_both_digests_and_suggests_deleting(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"payload")
    expected = "f" * 64
    with pytest.raises(CompatError) as err:
        verify_sha256(path, expected)
    text = assert_one_line(err)
    assert str(path) in text and expected in text
    assert hashlib.sha256(b"payload").hexdigest() in text and "delete" in text


# --------------------------------------------------------------------------- safe_extract

def test_safe_extract_writes_exact_bytes_and_returns_file_paths(tmp_path, good_zip):
    dest = tmp_path / "out"
    files = safe_extract(good_zip, dest)
    assert files == [dest / name for name in GOOD_MEMBERS]
    for name, data in GOOD_MEMBERS.items():
        assert (dest / name).read_bytes() == data


def test_safe_extract_handles_directory_entries_and_stored_members(tmp_path):
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("d/", b"")
        zf.writestr("d/e/", b"")
        zf.writestr("d/f.txt", b"f")
    files = safe_extract(path, tmp_path / "out")
    assert files == [tmp_path / "out" / "d" / "f.txt"]
    assert (tmp_path / "out" / "d" / "e").is_dir()


@pytest.mark.parametrize("name", ["../evil.txt", "secret/../../evil.txt", "/abs/evil.txt",
                                  "..\\evil.txt", "secret\\..\\..\\evil.txt", "C:evil.txt",
                                  "C:/evil.txt", ".."])
def test_unsafe_member_names_are_refused_before_anything_is_written(tmp_path, name):
    evil = make_zip(tmp_path / "zips" / "evil.zip", {**GOOD_MEMBERS, name: b"pwned"})
    dest = tmp_path / "a" / "b" / "dest"
    with pytest.raises(CompatError) as err:
        safe_extract(evil, dest)
    text = assert_one_line(err)
    assert "evil.zip" in text and repr(name) in text
    assert not dest.exists()
    assert all_files(tmp_path) == {evil}
    assert not Path("/abs/evil.txt").exists()


def test_symlink_member_is_refused(tmp_path):
    evil = make_symlink_zip(tmp_path / "zips" / "link.zip", "secret/link", "../../outside")
    dest = tmp_path / "dest"
    with pytest.raises(CompatError) as err:
        safe_extract(evil, dest)
    assert "symbolic link" in assert_one_line(err)
    assert not dest.exists()
    assert all_files(tmp_path) == {evil}


def test_member_resolving_outside_through_an_existing_symlink_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    evil = make_zip(tmp_path / "zips" / "evil.zip", {"link/evil.txt": b"pwned"})
    with pytest.raises(CompatError) as err:
        safe_extract(evil, dest)
    assert "outside the destination" in assert_one_line(err)
    assert list(outside.iterdir()) == []


def test_duplicate_member_names_are_refused(tmp_path):
    path = tmp_path / "dup.zip"
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.txt", b"1")
            zf.writestr("a.txt", b"2")
    with pytest.raises(CompatError) as err:
        safe_extract(path, tmp_path / "out")
    assert "duplicate" in assert_one_line(err)
    assert not (tmp_path / "out").exists()


def test_garbage_file_is_not_a_zip(tmp_path):
    path = tmp_path / "garbage.zip"
    path.write_bytes(b"<html>404 Not Found</html>\n" * 10)
    with pytest.raises(CompatError) as err:
        safe_extract(path, tmp_path / "out")
    assert "garbage.zip" in assert_one_line(err) and "not a zip" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_truncated_zip_is_refused(tmp_path, good_zip):
    path = tmp_path / "truncated.zip"
    path.write_bytes(good_zip.read_bytes()[: good_zip.stat().st_size // 2])
    with pytest.raises(CompatError) as err:
        safe_extract(path, tmp_path / "out")
    assert "truncated.zip" in assert_one_line(err)
    assert not (tmp_path / "out").exists()


def test_missing_zip_file_is_a_compat_error(tmp_path):
    with pytest.raises(CompatError) as err:
        safe_extract(tmp_path / "none.zip", tmp_path / "out")
    assert "none.zip" in assert_one_line(err)


def test_total_uncompressed_size_above_max_bytes_is_refused(tmp_path):
    # Compresses to almost nothing: the kind of archive a size limit exists for.
    path = make_zip(tmp_path / "bomb.zip", {"a.bin": bytes(600), "b.bin": bytes(600)})
    assert path.stat().st_size < 1000
    with pytest.raises(CompatError) as err:
        safe_extract(path, tmp_path / "out", max_bytes=1000)
    text = assert_one_line(err)
    assert "1200" in text and "1000" in text
    assert not (tmp_path / "out").exists()
    assert len(safe_extract(path, tmp_path / "out", max_bytes=1200)) == 2


def test_corrupt_member_data_removes_what_was_already_extracted(tmp_path):
    path = make_zip(tmp_path / "crc.zip", {"d/good.txt": b"good", "d/bad.txt": b"A" * 1000},
                    compression=zipfile.ZIP_STORED)
    raw = path.read_bytes()
    offset = raw.index(b"A" * 1000)
    path.write_bytes(raw[:offset] + b"B" + raw[offset + 1:])  # CRC no longer matches
    dest = tmp_path / "out"
    with pytest.raises(CompatError) as err:
        safe_extract(path, dest)
    assert "crc.zip" in assert_one_line(err)
    assert not dest.exists()
    assert all_files(tmp_path) == {path}


# --------------------------------------------------------------------------- command line

def _run_download_cli(*args, cwd):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "mnist_challenge_compat.model_download", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_fetches_a_zip_url_and_prints_the_model_directory(tmp_path, good_zip):
    result = _run_download_cli(good_zip.as_uri(), f"--dest_dir={tmp_path / 'models'}",
                               f"--sha256={sha256_hex(good_zip)}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model_dir = tmp_path / "models" / "secret"
    assert result.stdout.strip().endswith(f"sha256 verified; model directory: {model_dir}")
    assert (model_dir / "checkpoint").is_file()


def test_cli_without_a_model_name_says_which_exist_in_one_line(tmp_path):
    result = _run_download_cli(cwd=tmp_path)
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("model_download: ")]
    assert len(ours) == 1 and all(name in ours[0] for name in ("secret", "adv_trained", "natural"))
    assert "Traceback" not in result.stderr and not (tmp_path / "models").exists()


def test_cli_help_and_helpfull_exit_0_and_list_the_flags():
    from tests.conftest import assert_help_lists
    assert_help_lists(["-m", "mnist_challenge_compat.model_download"], "dest_dir")
