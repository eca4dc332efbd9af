"""Photo intake: the real type from the bytes, size and bomb limits, rotation, GPS, EXIF stripped.

Decoding is bounded before it starts. The header gives the size; JPEG decodes at the smallest DCT
scale still above the display size (``draft``), other formats at full size, so those are held to
``MAX_DECODED_PIXELS``. What the decode will cost is estimated from the header and reserved from
``DECODE_BUDGET``, one per worker process: photos of every request together never hold more than
``DECODE_BUDGET_BYTES`` of decoded pixels, and a photo that would wait for its turn. The full-size
image is shrunk to the display size first, then rotated and flattened, so no full-size copy is made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import pillow_heif
from PIL import Image, PngImagePlugin

# Phones send HEIC; pillow-heif teaches Pillow to read it (decode only, we always store JPEG).
pillow_heif.register_heif_opener()


def _return_large_frees_to_the_os() -> None:
    """Have glibc map every allocation of 1 MiB or more on its own, so freeing it gives it back at once.

    Photos decode in the thread pool, and glibc gives each thread an arena that keeps what it freed:
    five photos decoded one after another on five threads held five decodes' memory (measured: +636 MiB
    for five 25 MP PNGs; +139 MiB with this). Pillow allocates pixels in blocks of up to 16 MiB, under
    glibc's own sliding threshold, so the threshold is fixed here. Elsewhere (not glibc) nothing is done.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_return_large_frees_to_the_os()
# PNG text chunks are inflated while the header is read, before any pixel limit applies: Pillow
# allows 64 MB of them per image; a photo's metadata needs far less.
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 2**20

DISPLAY_SIDE = 1600
THUMBNAIL_SIDE = 320
# A phone photo is at most ~50 MP; more pixels than this from a few MB is a decompression bomb.
# JPEG is held to this: it decodes at 1/2, 1/4 or 1/8 scale, near the display size.
MAX_PIXELS = 64_000_000
# PNG, WebP and HEIC decode at full size: 25 MP takes a 24 MP phone HEIC and any screenshot.
MAX_DECODED_PIXELS = 25_000_000
# Decoded pixels the worker holds at once across all requests (each photo reserves its estimate).
DECODE_BUDGET_BYTES = 200 * 2**20
# A photo waits at most this long for its share of the budget before the request is told to retry.
DECODE_WAIT_SECONDS = 30.0
_GPS_IFD = 0x8825
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_PIL_FORMATS = {"image/jpeg": {"JPEG", "MPO"}, "image/png": {"PNG"}, "image/webp": {"WEBP"},
                "image/heic": {"HEIF"}}


class PhotoRejected(ValueError):
    """A photo we will not store; ``status`` is the HTTP status to answer with, ``detail`` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ProcessedPhoto:
    """A checked photo: JPEG display copy and thumbnail without EXIF, plus what we learnt from it."""

    display: bytes
    thumbnail: bytes
    width: int  # of the display copy
    height: int
    source_type: str  # MIME type found in the uploaded bytes
    sha256: str  # of the uploaded bytes, to recognise the same file sent twice
    gps: tuple[float, float] | None  # (lat, lon) from EXIF, to suggest a location


def sniff_type(data: bytes) -> str | None:
    """The image MIME type the leading bytes prove, or None (the file name and header are not trusted)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heic"
    return None


class DecodeBudget:
    """Bytes of decoded pixels a worker may hold at once; a photo reserves its estimate or waits its turn."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, cost: int, *, timeout: float = DECODE_WAIT_SECONDS) -> Iterator[None]:
        """Hold ``cost`` bytes of the budget for the block; PhotoRejected 503 when it does not free in time."""
        cost = min(cost, self.capacity)  # a larger photo was refused before asking; never wait forever
        with self._changed:
            if not self._changed.wait_for(lambda: self.in_use + cost <= self.capacity, timeout):
                raise PhotoRejected(503, "the server is busy processing other photos; send the photo again shortly")
            self.in_use += cost
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= cost
                self._changed.notify_all()


DECODE_BUDGET = DecodeBudget(DECODE_BUDGET_BYTES)


def decode_cost(image: Image.Image, full_size: tuple[int, int]) -> int:
    """Bytes decoding ``image`` (already drafted, if JPEG) will hold at its peak.

    Pillow keeps RGB and RGBA at 4 bytes a pixel, L and P at 1; shrinking to the display size may
    first convert the image once at full size (P to RGB(A), RGBA to premultiplied), 4 bytes a pixel
    more; decoders that are not JPEG hand over the pixels through a buffer of their own, counted the
    same. A progressive JPEG keeps every DCT coefficient of the full image (2 bytes, up to 3 planes).
    """
    width, height = image.size
    bands = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    cost = width * height * (bands + 4)
    if image.format in ("JPEG", "MPO") and (image.info.get("progressive") or image.info.get("progression")):
        cost += full_size[0] * full_size[1] * 6
    return cost


def process_photo(data: bytes, *, max_bytes: int, budget: DecodeBudget | None = None) -> ProcessedPhoto:
    """Check and process one uploaded photo; raises PhotoRejected (413, 415, 422 or 503) when refused.

    Decoding reserves its memory from ``budget`` (the worker's ``DECODE_BUDGET`` by default).
    """
    if len(data) > max_bytes:
        raise PhotoRejected(413, f"the photo is {len(data)} bytes; the limit is {max_bytes} bytes")
    source_type = sniff_type(data)
    if source_type is None:
        raise PhotoRejected(415, "not a JPEG, PNG, WebP or HEIC image (checked from the file's bytes)")
    budget = budget or DECODE_BUDGET
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in _PIL_FORMATS[source_type]:
                raise PhotoRejected(415, f"the file starts like {source_type} but is not one")
            # The header's size is known before decoding: refuse bombs without inflating them.
            full_size = image.size
            drafts = image.format in ("JPEG", "MPO")
            limit = MAX_PIXELS if drafts else MAX_DECODED_PIXELS
            if image.width * image.height > limit:
                kind = "" if drafts else f"{image.format} "
                raise PhotoRejected(
                    422, f"the {kind}image claims {image.width}x{image.height} pixels; at most {limit} are accepted"
                )
            if drafts and max(image.size) > DISPLAY_SIDE:
                # Decode at the smallest DCT scale still above the display size: a 12 MP phone photo
                # decodes at a quarter of its pixels, which is most of the cost of processing it.
                scale = DISPLAY_SIDE / max(image.size)
                image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            cost = decode_cost(image, full_size)
            if cost > budget.capacity:
                raise PhotoRejected(
                    422, f"the image ({full_size[0]}x{full_size[1]} pixels) needs {cost // 2**20} MiB to decode; "
                         f"at most {budget.capacity // 2**20} MiB are spent on one photo")
            with budget.reserve(cost):
                image.load()
                # After load: Pillow decodes a whole PNG to look for EXIF that may follow the pixels.
                gps = _gps_of(image)
                orientation = _orientation_of(image)
                upright = _display_copy(image, orientation)
                del image  # the full-size pixels go before the budget is given back
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(422, "the image decompresses to too many pixels (decompression bomb)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds (OSError, SyntaxError, ValueError...)
        raise PhotoRejected(422, f"the image is corrupt or truncated ({type(exc).__name__})") from None
    display = _jpeg(upright)
    small = upright.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return ProcessedPhoto(
        display=display, thumbnail=_jpeg(small), width=upright.width, height=upright.height,
        source_type=source_type, sha256=hashlib.sha256(data).hexdigest(), gps=gps,
    )


# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation_of(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright) read from the header."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except (TypeError, ValueError):
        return 1


def _display_copy(image: Image.Image, orientation: int) -> Image.Image:
    """The decoded ``image`` shrunk to the display size first, then turned upright and flattened to RGB.

    Shrinking first means rotation and flattening work on the display size, not on a full-size copy.
    """
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = "A" in image.mode or (image.mode == "P" and "transparency" in image.info)
        image = image.convert("RGBA" if has_alpha else "RGB")
    # In place: reduces by a whole factor first (thumbnail's reducing_gap), then resamples with Lanczos.
    image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    method = _UPRIGHT.get(orientation)
    if method is not None:
        image = image.transpose(method)
    return _flatten(image)


def _flatten(image: Image.Image) -> Image.Image:
    """The image in RGB (transparency laid on white) with no metadata carried over."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
    else:
        flat = image if image.mode == "RGB" else image.convert("RGB")
    flat.info = {}  # EXIF, XMP, ICC and comments stay behind
    return flat


def _jpeg(image: Image.Image) -> bytes:
    """JPEG bytes of ``image``, saved without any EXIF (nothing is passed to carry it)."""
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _gps_of(image: Image.Image) -> tuple[float, float] | None:
    """(lat, lon) from the EXIF GPS block, or None when absent or nonsensical."""
    try:
        gps = image.getexif().get_ifd(_GPS_IFD)
        lat = _degrees(gps[2], gps.get(1, "N"), "S")
        lon = _degrees(gps[4], gps.get(3, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError, AttributeError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return round(lat, 7), round(lon, 7)


def _degrees(dms: tuple, ref: str | bytes, negative: str) -> float:
    """Degrees from EXIF (degrees, minutes, seconds) rationals, negative for the S or W reference."""
    degrees, minutes, seconds = (Fraction(str(float(part))) for part in dms)
    value = float(degrees + minutes / 60 + seconds / 3600)
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    return -value if ref.strip().upper().startswith(negative) else value
