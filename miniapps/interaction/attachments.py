"""Attachments: what a file really is, judged from its bytes (never from its name), and the limits."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

from plugins import DomainError

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 5
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc/.xls/.ppt share this container
ALLOWED = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.ms-powerpoint": "ppt",
}
_OOXML = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))
_LEGACY_BY_SUFFIX = {".doc": "application/msword", ".xls": "application/vnd.ms-excel",
                     ".ppt": "application/vnd.ms-powerpoint"}
# Office documents are a few hundred parts at most and compress text about 5-20 times; a zip past
# these is a bomb for whoever opens it (we never inflate it ourselves beyond a few bytes).
MAX_ZIP_ENTRIES = 5_000
MAX_ZIP_RATIO = 100
MAX_ZIP_INFLATED_FLOOR = 16 * 1024 * 1024  # small files may compress better: this much is always fine
_MIMETYPE_MAX = 256
_SAFE_NAME = re.compile(r"[^\w.\- ]+")


class AttachmentRejected(DomainError):
    """A file refused: ``status`` is 413 (too big), 415 (a type we do not take) or 422 (empty, too many)."""


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed the checks: its real type, a safe name, its bytes and their digest."""

    filename: str
    content_type: str
    data: bytes
    sha256: str

    @property
    def extension(self) -> str:
        """The extension that matches the real type."""
        return ALLOWED[self.content_type]


def sniff(data: bytes, filename: str = "") -> str | None:
    """The content type ``data`` really has, or None when it is not a type we accept.

    AttachmentRejected (422) for a zip archive that is a bomb (too many entries, inflates too far).
    """
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"heim", b"heis"):
        return "image/heic"
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    if data.startswith(OLE2):
        # The OLE2 container does not say which program wrote it without parsing its directory;
        # the bytes prove it is a legacy Office file, the name only picks which of the three.
        return _LEGACY_BY_SUFFIX.get(PurePath(filename.lower()).suffix)
    return None


def _sniff_zip(data: bytes) -> str | None:
    """The office type a zip archive holds, judged from its directory and at most a few bytes of one entry.

    Nothing is inflated beyond ``mimetype``'s first bytes. Archives with more entries than an office
    document has, or that would inflate to far more than office documents do, are refused as bombs
    (for whoever opens them later) before zipfile reads their directory.
    """
    entries = _zip_entry_count(data)
    if entries is None:
        return None
    if entries > MAX_ZIP_ENTRIES:
        raise AttachmentRejected(422, f"the archive holds {entries} entries; an office document has at most "
                                      f"{MAX_ZIP_ENTRIES}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            inflated = sum(info.file_size for info in infos)
            if inflated > max(MAX_ZIP_RATIO * len(data), MAX_ZIP_INFLATED_FLOOR):
                raise AttachmentRejected(
                    422, f"the archive would inflate to {inflated} bytes from {len(data)}: compressed more than "
                         f"{MAX_ZIP_RATIO} times, as zip bombs are and office documents are not")
            names = {info.filename: info for info in infos}
            if "mimetype" in names:  # OpenDocument: the first entry names the type, uncompressed
                return _declared_odf_type(archive, names["mimetype"])
            if "[Content_Types].xml" in names:
                for folder, extension in _OOXML:
                    if any(name.startswith(folder) for name in names):
                        return next(t for t, e in ALLOWED.items() if e == extension)
    except AttachmentRejected:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        return None
    return None


def _declared_odf_type(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """The type OpenDocument's ``mimetype`` entry names, read through a bounded window; None if it is no such entry."""
    if info.file_size > _MIMETYPE_MAX:
        return None  # a type name is a few dozen bytes; a longer entry is not one
    with archive.open(info) as entry:
        declared = entry.read(_MIMETYPE_MAX + 1)  # the entry's own size may lie: never read past the window
    if len(declared) > _MIMETYPE_MAX:
        return None
    text = declared.decode("ascii", "replace").strip()
    return text if text in ALLOWED else None


def _zip_entry_count(data: bytes) -> int | None:
    """The entry count the end-of-central-directory record states, read before zipfile parses the directory."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))  # the record is 22 bytes plus a comment
    if end < 0 or end + 22 > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, end + 10)
    return MAX_ZIP_ENTRIES + 1 if count == 0xFFFF else count  # Zip64's count: no office document needs it


def safe_filename(name: str, extension: str) -> str:
    """A display name without paths or odd characters, ending in the extension of the real type."""
    stem = PurePath(name.replace("\\", "/")).name or "tep"
    stem = _SAFE_NAME.sub("_", stem).strip(" .") or "tep"
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return f"{stem[:150]}.{extension}"


def check_file(filename: str, data: bytes, *, max_bytes: int = MAX_BYTES) -> CheckedFile:
    """``data`` as an accepted attachment, or AttachmentRejected saying why."""
    if not data:
        raise AttachmentRejected(422, f"{filename or 'the file'} is empty")
    if len(data) > max_bytes:
        raise AttachmentRejected(413, f"{filename or 'the file'} is {len(data)} bytes; the limit is {max_bytes}")
    content_type = sniff(data, filename)
    if content_type is None:
        raise AttachmentRejected(
            415, f"{filename or 'the file'} is not a PDF, an image (JPEG, PNG, WebP, HEIC) or an office document "
                 "(docx, xlsx, pptx, odt, ods, odp, doc, xls, ppt)")
    return CheckedFile(filename=safe_filename(filename, ALLOWED[content_type]), content_type=content_type,
                       data=data, sha256=hashlib.sha256(data).hexdigest())
