"""What a file is, from its bytes: accepted types, disguised files, limits, safe names."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import Workbook
from PIL import Image

from miniapps.interaction.attachments import (
    OLE2,
    AttachmentRejected,
    check_file,
    safe_filename,
    sniff,
)


def _image(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, kind)
    return out.getvalue()


def _xlsx() -> bytes:
    out = io.BytesIO()
    Workbook().save(out)
    return out.getvalue()


def _odt() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<office:document-content/>")
    return out.getvalue()


def test_real_types_are_recognised_whatever_the_name() -> None:
    assert sniff(_image("JPEG"), "scan.png") == "image/jpeg"
    assert sniff(_image("PNG"), "anh.jpg") == "image/png"
    assert sniff(_image("WEBP")) == "image/webp"
    assert sniff(_xlsx(), "bang.docx") == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert sniff(_odt()) == "application/vnd.oasis.opendocument.text"
    assert sniff(OLE2 + b"\x00" * 64, "to-trinh.doc") == "application/msword"


def test_disguised_and_unknown_files_are_refused() -> None:
    for data, name in [(b"MZ\x90\x00", "hoa-don.pdf"), (b"<html><script>", "anh.png"),
                       (OLE2 + b"\x00" * 64, "virus.exe"), (b"PK\x03\x04broken", "bang.xlsx")]:
        with pytest.raises(AttachmentRejected) as refused:
            check_file(name, data)
        assert refused.value.status == 415
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("payload.exe", "MZ")
    with pytest.raises(AttachmentRejected):
        check_file("tai-lieu.docx", zipped.getvalue())  # a zip that is not an office document


def test_limits_and_names() -> None:
    with pytest.raises(AttachmentRejected) as empty:
        check_file("rong.pdf", b"")
    assert empty.value.status == 422
    with pytest.raises(AttachmentRejected) as big:
        check_file("lon.pdf", b"%PDF-" + b"0" * 100, max_bytes=50)
    assert big.value.status == 413
    checked = check_file("../../etc/Biên bản họp.PNG", b"%PDF-1.7\n")
    assert checked.filename == "Biên bản họp.pdf" and checked.content_type == "application/pdf"
    assert safe_filename("C:\\Users\\a\\<b>.docx", "docx") == "_b_.docx"
