"""Fetching the MNIST and CIFAR-10 Challenges' released model zips safely.

The challenges publish their models as zip files (MNIST: ``secret.zip``, ``adv_trained.zip``,
``natural.zip``; CIFAR-10: ``adv_trained.zip``, ``natural.zip``), each holding one model
directory (``<name>/checkpoint`` state file plus
``checkpoint-<step>.index`` / ``.data-00000-of-00001``). This module downloads such a zip
atomically, checks its sha256 where one is known, extracts it refusing anything that could
write outside the destination (path traversal, absolute names, symlinks, zip bombs) and finds
the model directory. File formats only: no attack math, no TensorFlow beyond
:func:`~mnist_challenge_compat.checkpoint.latest_checkpoint`.

Standard library only (``urllib``, ``zipfile``, ``hashlib``); ``file://`` URLs work, which is
how the tests run offline.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.atomic import write_file_atomic

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FetchedModel",
    "ModelSource",
    "OFFICIAL_MODELS",
    "download",
    "fetch_model",
    "safe_extract",
    "sha256_of",
    "verify_sha256",
]

_log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB: streaming unit for downloads, hashing and extraction
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: largest total uncompressed size safe_extract accepts
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")

Opener = Callable[..., BinaryIO]


@dataclass(frozen=True)
class ModelSource:
    """Where a released model zip lives, its published sha256 (hex) if any, and the name it
    is stored under (default: the URL's file name; the two challenges use the same names)."""

    url: str
    sha256: str | None = None
    filename: str | None = None


_MODELS_URL = "https://github.com/MadryLab/mnist_challenge_models/raw/master"
_CIFAR10_MODELS_URL = "https://github.com/MadryProj/cifar10_challenge_models/raw/master"

# Only the secret model's digest is published by the challenge (in its README); the
# adversarially trained and natural models were released without one, so fetch_model can only
# compute and report their digests, not check them.
OFFICIAL_MODELS: dict[str, ModelSource] = {
    "secret": ModelSource(
        url=f"{_MODELS_URL}/secret.zip",
        sha256="14eea09c72092db5c2eb5e34cd105974f42569281d2f34826316e356d057f96d"),
    "adv_trained": ModelSource(url=f"{_MODELS_URL}/adv_trained.zip", sha256=None),
    "natural": ModelSource(url=f"{_MODELS_URL}/natural.zip", sha256=None),
    # The CIFAR-10 challenge's fetch_model.py downloads these two and prints their sha256
    # without publishing it: they are checked by their zip integrity only. (Its README's digest
    # belongs to the secret model, whose download address is not in that script.)
    "cifar10_adv_trained": ModelSource(url=f"{_CIFAR10_MODELS_URL}/adv_trained.zip",
                                       filename="cifar10_adv_trained.zip"),
    "cifar10_natural": ModelSource(url=f"{_CIFAR10_MODELS_URL}/natural.zip",
                                   filename="cifar10_natural.zip"),
}


@dataclass(frozen=True)
class FetchedModel:
    """Result of :func:`fetch_model`.

    Attributes:
        zip_path: the downloaded zip.
        sha256: its sha256 (hex), always computed.
        model_dir: the extracted directory holding the ``checkpoint`` state file.
        verified: True when ``sha256`` was checked against a known digest.
    """

    zip_path: Path
    sha256: str
    model_dir: Path
    verified: bool


# --------------------------------------------------------------------------- helpers

def _one_line(text: object) -> str:
    """``text`` with all whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def _reason(err: BaseException) -> str:
    """A short one-line reason for a download error."""
    if isinstance(err, urllib.error.HTTPError):
        return _one_line(f"HTTP {err.code} {err.reason}")
    if isinstance(err, urllib.error.URLError):
        return _one_line(err.reason) or type(err).__name__
    return _one_line(err) or type(err).__name__


def _normalize_digest(digest: str) -> str:
    """Lower-case hex sha256; ValueError for anything that is not 64 hex digits."""
    text = str(digest).strip().lower()
    if not _SHA256_HEX.fullmatch(text):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return text


# --------------------------------------------------------------------------- download

def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _copy_response(response: BinaryIO, out: BinaryIO, url: str, expected: int | None) -> None:
    """Streams ``response`` into ``out``; read errors and short bodies become CompatError."""
    received = 0
    while True:
        try:
            chunk = response.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as err:  # write errors are not caught here
            raise CompatError(f"{url}: download failed ({_reason(err)})") from None
        if not chunk:
            break
        out.write(chunk)
        received += len(chunk)
    if expected is not None and received != expected:
        raise CompatError(f"{url}: download failed (received {received} of {expected} bytes)")


def download(url: str, dest: str | os.PathLike, *, timeout: float = 60,
             opener: Opener = urllib.request.urlopen) -> Path:
    """Downloads ``url`` to ``dest`` atomically; an existing ``dest`` is returned as is.

    The body is streamed into a hidden temp file beside ``dest`` and renamed at the end, so a
    partial download never appears under ``dest``'s name. When ``dest`` already exists nothing
    is fetched (callers check its digest anyway). ``file://`` URLs work.

    Args:
        url: ``https://``, ``http://`` or ``file://`` URL.
        dest: the file to create; its parent directory is created if needed.
        timeout: seconds, passed to ``opener``.
        opener: ``urllib.request.urlopen`` or a callable with its signature (for tests).

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        CompatError: ``<url>: download failed (<reason>)`` (network, HTTP status, short body),
            or ``dest`` cannot be written / is a directory.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    if dest.exists():
        raise CompatError(f"{dest}: exists and is not a file; cannot download {url} there")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CompatError(f"{dest.parent}: cannot create directory "
                          f"({_one_line(err.strerror or err)})") from None
    try:
        response = opener(url, timeout=timeout)
    except (OSError, ValueError, http.client.HTTPException) as err:  # URLError is an OSError
        raise CompatError(f"{url}: download failed ({_reason(err)})") from None
    try:
        status = getattr(response, "status", None)
        if status is not None and not 200 <= int(status) < 300:
            raise CompatError(f"{url}: download failed (HTTP {status})")
        length = _content_length(response)
        write_file_atomic(dest, lambda f: _copy_response(response, f, url, length))
    finally:
        response.close()
    return dest


# --------------------------------------------------------------------------- digests

def sha256_of(path: str | os.PathLike) -> str:
    """sha256 of a file as lower-case hex, read in chunks.

    Raises:
        CompatError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                digest.update(chunk)
    except OSError as err:
        raise CompatError(f"{os.fspath(path)}: cannot read "
                          f"({_one_line(err.strerror or err)})") from None
    return digest.hexdigest()


def _check_digest(path: str | os.PathLike, expected: str, actual: str) -> None:
    if actual != expected:
        raise CompatError(f"{os.fspath(path)}: sha256 mismatch (expected {expected}, got "
                          f"{actual}); delete the file to download it again")


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Checks that the file's sha256 equals ``expected`` (hex, any case).

    Raises:
        CompatError: the digests differ (message names the file and both digests) or the file
            cannot be read.
        ValueError: ``expected`` is not a 64-digit hex string.
    """
    _check_digest(path, _normalize_digest(expected), sha256_of(path))


# --------------------------------------------------------------------------- extraction

def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member's name or type is unsafe to extract, or None (name checks only)."""
    name = info.filename
    if "\\" in name:
        return "backslash in name (Windows path separator, possible path traversal)"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    if ".." in name.split("/"):
        return "'..' path component"
    if not [p for p in name.split("/") if p not in ("", ".")]:
        return "empty name"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "special file (not a regular file or directory)"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def _parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    return tuple(p for p in info.filename.split("/") if p not in ("", "."))


def _plan(zf: zipfile.ZipFile, zip_name: str, dest: Path,
          max_bytes: int) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Checks every member before anything is written; returns (member, path parts) pairs."""
    root = dest.resolve()
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    total = 0
    for info in zf.infolist():
        problem = _member_problem(info)
        parts = _parts(info) if problem is None else ()
        if problem is None and not root.joinpath(*parts).resolve().is_relative_to(root):
            problem = "resolves outside the destination directory"
        if problem is None and parts in seen:
            problem = "duplicate member"
        if problem is not None:
            raise CompatError(f"{zip_name}: refusing member {info.filename!r} ({problem}); "
                              f"nothing extracted")
        seen.add(parts)
        if not info.is_dir():
            total += info.file_size
        plan.append((info, parts))
    if total > max_bytes:
        raise CompatError(f"{zip_name}: uncompressed size {total} bytes exceeds the limit of "
                          f"{max_bytes} bytes; nothing extracted")
    files = {parts for info, parts in plan if not info.is_dir()}
    for info, parts in plan:
        for i in range(1, len(parts)):
            if parts[:i] in files:
                raise CompatError(f"{zip_name}: refusing member {info.filename!r} (inside file "
                                  f"member {'/'.join(parts[:i])!r}); nothing extracted")
    return plan


class _Budget:
    """Counts extracted bytes: headers can lie about sizes, so the limit is enforced live."""

    def __init__(self, zip_name: str, max_bytes: int) -> None:
        self.zip_name = zip_name
        self.left = max_bytes

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise CompatError(f"{self.zip_name}: uncompressed data exceeds the size limit")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: BinaryIO,
                 budget: _Budget) -> None:
    written = 0
    with zf.open(info) as src:
        while chunk := src.read(CHUNK_SIZE):
            written += len(chunk)
            if written > info.file_size:
                raise CompatError(f"{budget.zip_name}: member {info.filename!r} is larger than "
                                  f"its header declares ({info.file_size} bytes)")
            budget.take(len(chunk))
            out.write(chunk)


def _make_dirs(directory: Path, created: list[Path]) -> None:
    """``mkdir -p`` that records the directories it created (for clean-up on failure)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except OSError as err:
            raise CompatError(f"{path}: cannot create directory "
                              f"({_one_line(err.strerror or err)})") from None
        created.append(path)


def _remove_extracted(files: list[Path], dirs: list[Path]) -> None:
    for path in files:
        try:
            path.unlink()
        except OSError:
            pass
    for path in reversed(dirs):
        try:
            path.rmdir()
        except OSError:
            pass


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except OSError as err:
        raise CompatError(f"{zip_path}: cannot read ({_one_line(err.strerror or err)})") from None
    # zipfile raises NotImplementedError for compression methods it does not support.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, NotImplementedError,
            EOFError) as err:
        raise CompatError(f"{zip_path}: not a zip file or corrupt ({_one_line(err)})") from None


def safe_extract(zip_path: str | os.PathLike, dest_dir: str | os.PathLike, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> list[Path]:
    """Extracts a zip into ``dest_dir`` without ever writing outside it.

    Every member is checked before anything is written. Refused (CompatError, nothing
    extracted): absolute names, drive letters, ``..`` components, backslashes (``..\\x``),
    symlinks and other special files (zip ``external_attr``), encrypted members, duplicate
    names, names resolving outside ``dest_dir`` (e.g. through an existing symlink), and a total
    uncompressed size above ``max_bytes``. Members are streamed with ``zf.open`` and written
    atomically; if extraction fails midway (corrupt data, CRC error, sizes that lie), the
    files and directories it created are removed again.

    Returns:
        The extracted files (not directories), in archive order.

    Raises:
        CompatError: as above, or the file is missing, not a zip or corrupt.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    with _open_zip(zip_path) as zf:
        plan = _plan(zf, str(zip_path), dest, max_bytes)
        budget = _Budget(str(zip_path), max_bytes)
        files: list[Path] = []
        dirs: list[Path] = []
        try:
            _make_dirs(dest, dirs)
            for info, parts in plan:
                target = dest.joinpath(*parts)
                if info.is_dir():
                    _make_dirs(target, dirs)
                    continue
                _make_dirs(target.parent, dirs)
                write_file_atomic(target, lambda f, i=info: _copy_member(zf, i, f, budget))
                files.append(target)
        except CompatError:
            _remove_extracted(files, dirs)
            raise
        # NotImplementedError: a member's compression method that zipfile does not support.
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError,
                NotImplementedError) as err:
            _remove_extracted(files, dirs)
            raise CompatError(f"{zip_path}: corrupt archive data ({_one_line(err)}); "
                              f"nothing extracted") from None
    return files


# --------------------------------------------------------------------------- fetch_model

def _source(name_or_url: str, sha256: str | None) -> tuple[str, str | None, str]:
    """(url, expected digest or None, zip file name) for an official model name or a URL."""
    if name_or_url in OFFICIAL_MODELS:
        source = OFFICIAL_MODELS[name_or_url]
        url, expected = source.url, source.sha256
        filename = source.filename or _zip_name(url)
    elif "://" in name_or_url:
        url, expected, filename = name_or_url, None, _zip_name(name_or_url)
    else:
        raise CompatError(f"unknown model {name_or_url!r}; known: "
                          f"{', '.join(sorted(OFFICIAL_MODELS))} (or pass a URL)")
    if sha256 is not None:
        expected = sha256
    return url, (_normalize_digest(expected) if expected is not None else None), filename


def _zip_name(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if name in ("", ".", "..") or "\\" in name or "/" in name:
        raise CompatError(f"{url}: URL names no file to download")
    return name


def _find_model_dir(zip_path: Path, files: list[Path]) -> Path:
    """The one extracted directory whose ``checkpoint`` state file names an extracted
    checkpoint (``.index`` and data shards present)."""
    # Imported here: the checkpoint module loads TensorFlow, which a download does not need.
    from mnist_challenge_compat.checkpoint import (STATE_FILE, _check_data_shards,
                                                   _resolve_prefix, latest_checkpoint)
    states = [path for path in files if path.name == STATE_FILE]
    if not states:
        raise CompatError(f"{zip_path}: archive holds no '{STATE_FILE}' state file "
                          f"(not a challenge model zip)")
    extracted = {path.resolve() for path in files}
    found = []
    for state in states:
        prefix = latest_checkpoint(state.parent)
        if prefix is None:
            _resolve_prefix(state.parent)  # raises a precise one-line CompatError
            raise CompatError(f"{state}: names no extracted checkpoint")
        if Path(prefix + ".index").resolve() not in extracted:
            raise CompatError(f"{state}: names checkpoint {prefix!r} outside the archive")
        _check_data_shards(prefix)
        found.append(state.parent)
    if len(found) > 1:
        raise CompatError(f"{zip_path}: holds several model directories "
                          f"({', '.join(str(d) for d in found)}); expected one")
    return found[0]


def fetch_model(name_or_url: str, dest_dir: str | os.PathLike, *, sha256: str | None = None,
                timeout: float = 60, max_bytes: int = DEFAULT_MAX_BYTES,
                opener: Opener = urllib.request.urlopen) -> FetchedModel:
    """Downloads, verifies and safely extracts a challenge model zip.

    Args:
        name_or_url: a key of :data:`OFFICIAL_MODELS` (MNIST ``secret``, ``adv_trained``,
            ``natural``; CIFAR-10 ``cifar10_adv_trained``, ``cifar10_natural``) or a URL of a
            zip (``file://`` works).
        dest_dir: the zip is stored as ``dest_dir/<zip name>`` (kept: a second call does not
            download again; CIFAR-10 zips as ``cifar10_<name>.zip``) and extracted into
            ``dest_dir``.
        sha256: expected digest (hex); overrides the published one. Without either, the
            digest is computed, logged and returned but cannot be checked.
        timeout, opener: see :func:`download`.
        max_bytes: see :func:`safe_extract`.

    Returns:
        :class:`FetchedModel` with the zip path, its sha256, the model directory (the one
        holding the ``checkpoint`` state file) and whether the digest was verified.

    Raises:
        CompatError: download failure, digest mismatch (nothing is extracted then), an unsafe
            or corrupt archive, or no model directory in it.
        ValueError: ``sha256`` is not a 64-digit hex string.
    """
    url, expected, filename = _source(name_or_url, sha256)
    zip_path = download(url, Path(dest_dir) / filename, timeout=timeout, opener=opener)
    actual = sha256_of(zip_path)
    if expected is not None:
        _check_digest(zip_path, expected, actual)
    else:
        _log.warning("%s: no published sha256 to check against; sha256 is %s",
                     zip_path, actual)
    files = safe_extract(zip_path, dest_dir, max_bytes=max_bytes)
    model_dir = _find_model_dir(zip_path, files)
    return FetchedModel(zip_path=zip_path, sha256=actual, model_dir=model_dir,
                        verified=expected is not None)


# --------------------------------------------------------------------------- command line

def main(argv: list[str]) -> None:
    """``python -m mnist_challenge_compat.model_download NAME_OR_URL [--dest_dir=DIR]``:
    fetches one model and prints the directory to pass as ``--model_dir``."""
    from absl import flags

    from workflow.cli import fail

    program = "model_download"
    if len(argv) != 2:
        fail(program, f"give one model: {', '.join(sorted(OFFICIAL_MODELS))} or a zip URL "
                      f"(file:// works), e.g. python -m mnist_challenge_compat.model_download secret")
    values = flags.FLAGS
    try:
        fetched = fetch_model(argv[1], values.dest_dir, sha256=values.sha256)
    except (CompatError, ValueError) as err:
        fail(program, str(err))
    check = "sha256 verified" if fetched.verified else f"sha256 {fetched.sha256} (no published digest)"
    print(f"{fetched.zip_path}: {check}; model directory: {fetched.model_dir}")


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("dest_dir", "models/downloaded",
                        "Where the zip is saved and extracted (kept: no second download).")
    flags.DEFINE_string("sha256", None, "Expected sha256 of the zip (default: the published one).")


def run() -> None:
    """``python -m mnist_challenge_compat.model_download``."""
    from absl import app

    from workflow.cli import one_line_flags_parser, quiet_tensorflow

    quiet_tensorflow()
    _define_flags()
    app.run(main, flags_parser=one_line_flags_parser("model_download", modules=(__name__,),
                                                     usage=main.__doc__))


if __name__ == "__main__":
    run()
