"""Where uploaded files live: a small storage protocol, local disk by default."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from config import Settings

log = logging.getLogger(__name__)

# "<miniapp>/<...>": plain segments only, so a key can never climb out of the store's root.
_KEY = re.compile(r"^[a-z][a-z0-9_-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$")


@runtime_checkable
class MediaStore(Protocol):
    """Blob storage by key; an S3-compatible store can implement the same three calls."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; KeyError when there are none."""

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens when it is already gone."""


def check_key(key: str) -> str:
    """``key`` when it is a well-formed "<miniapp>/<...>" key; ValueError otherwise."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"bad media key {key!r}: use '<miniapp>/<segments>' with letters, digits, . _ -")
    return key


class LocalMediaStore:
    """Files on local disk under ``root``; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (the content type is implied by the key's use; not kept on disk)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; KeyError when missing."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._path(key).unlink(missing_ok=True)


def media_store(settings: Settings) -> MediaStore:
    """The host's store for ``settings``: local disk under media_dir, else var_dir/media."""
    return LocalMediaStore(settings.media_dir or settings.var_dir / "media")


class FileBatch:
    """The files written for one database change, so they can be deleted again if that change fails."""

    def __init__(self, store: MediaStore) -> None:
        self.store = store
        self.keys: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key`` and remember the key; returns it."""
        self.store.put(key, data, content_type)
        self.keys.append(key)
        return key

    def discard(self) -> None:
        """Delete every file written so far (best effort: a file left behind is logged, never raised)."""
        for key in self.keys:
            try:
                self.store.delete(key)
            except Exception:
                log.exception("could not delete %s after a failed change", key)
        self.keys.clear()


@contextmanager
def all_or_nothing(store: MediaStore) -> Iterator[FileBatch]:
    """Write files through the batch and commit the database change inside the block: if anything in it
    raises, the files written are deleted, so there is never a file without its row or a row without its file."""
    batch = FileBatch(store)
    try:
        yield batch
    except BaseException:
        batch.discard()
        raise
