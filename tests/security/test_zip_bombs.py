"""Zip bombs: an attachment is recognised from its archive without inflating more than a few bytes of it."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

import httpx
import pytest

from miniapps.interaction.attachments import AttachmentRejected, check_file, sniff
from tests.security.conftest import MIB, REQUEST_BUDGET, Served

API = "/api/miniapps/interaction"
ODT = "application/vnd.oasis.opendocument.text"


@functools.cache
def _bomb_path(directory: str) -> Path:
    """An ODF-looking archive whose ``mimetype`` entry inflates to 1 GiB (about 1 MiB on the wire)."""
    path = Path(directory) / "bomb.odt"
    zeros = b"\0" * (8 * MIB)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("mimetype")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as entry:
            for _ in range(128):
                entry.write(zeros)
        archive.writestr("content.xml", "<office:document-content/>")
    return path


@pytest.fixture(scope="session")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The 1 GiB ``mimetype`` bomb's bytes."""
    return _bomb_path(str(tmp_path_factory.mktemp("bombs"))).read_bytes()


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_the_bomb_is_small_on_the_wire_and_huge_inside(bomb: bytes) -> None:
    """The fixture is what the finding describes: ~1 MiB that inflates to 1 GiB."""
    assert len(bomb) < 2 * MIB
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        assert archive.getinfo("mimetype").file_size == 1024 * MIB


def test_attaching_the_bomb_is_refused_within_the_budget(served: Served, bomb: bytes) -> None:
    """A commune official attaches the bomb to their question: refused, and the worker barely notices."""
    who = served.official("commune_official", "phu-vang")
    asked = httpx.post(served.url + f"{API}/questions", headers=who, timeout=60,
                       json={"title": "Thu hồi đất nông nghiệp làm đường", "body": "Xã có thẩm quyền thu hồi không?",
                             "field": "land"})
    assert asked.status_code == 201, asked.text
    url = served.url + f"{API}/questions/{asked.json()['id']}/attachments"
    warm = httpx.post(url, headers=who, files={"files": ("to-trinh.odt", _zip({"mimetype": ODT.encode()}))},
                      timeout=60)
    assert warm.status_code == 201, warm.text
    response, rise = served.peak_rise(
        lambda: httpx.post(url, headers=who, files={"files": ("bao-cao.odt", bomb)}, timeout=300))
    assert rise <= REQUEST_BUDGET, f"peak RSS rose {rise / MIB:.0f} MiB"
    assert response.status_code in (415, 422), response.text
    assert response.json()["field"] == "files.0"


def test_sniffing_reads_a_bounded_prefix_of_the_mimetype_entry(bomb: bytes) -> None:
    """The unit under the route: the bomb is refused as what it is."""
    with pytest.raises(AttachmentRejected) as refused:
        check_file("bao-cao.odt", bomb)
    assert refused.value.status == 422
    assert "compress" in refused.value.detail


def test_a_well_formed_odt_with_a_padded_mimetype_is_not_accepted() -> None:
    """``mimetype`` holds the type and nothing else: a long entry is no OpenDocument, whatever it starts with."""
    padded = _zip({"mimetype": ODT.encode() + b" " * 100_000}, zipfile.ZIP_STORED)
    assert sniff(padded) is None


def test_too_many_entries_are_refused_before_the_directory_is_read() -> None:
    """An archive of 20,000 empty entries (a central directory that costs memory to parse) is refused."""
    many = _zip({"[Content_Types].xml": b"<Types/>", **{f"word/{i}.xml": b"" for i in range(20_000)}})
    assert len(many) < 10 * MIB
    with pytest.raises(AttachmentRejected) as refused:
        check_file("hop-dong.docx", many)
    assert refused.value.status == 422
    assert "entries" in refused.value.detail


def test_an_overall_compression_ratio_beyond_office_documents_is_refused() -> None:
    """A docx whose parts inflate to 1,000 times its size is a bomb for whoever opens it, not a document."""
    inflated = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:t>a</w:t>" * (4 * MIB)})
    with pytest.raises(AttachmentRejected) as refused:
        check_file("hop-dong.docx", inflated)
    assert refused.value.status == 422


def test_real_office_documents_still_pass() -> None:
    """An xlsx from openpyxl and a minimal odt are recognised as before."""
    from openpyxl import Workbook

    out = io.BytesIO()
    Workbook().save(out)
    assert check_file("bang.xlsx", out.getvalue()).content_type.endswith("spreadsheetml.sheet")
    odt = _zip({"mimetype": ODT.encode(), "content.xml": b"<office:document-content/>"}, zipfile.ZIP_STORED)
    assert check_file("van-ban.odt", odt).content_type == ODT
