"""Photo intake: the real type from the bytes, size and bomb limits, rotation, GPS, EXIF stripped."""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from fractions import Fraction

import pillow_heif
from PIL import Image, ImageOps

# Phones send HEIC; pillow-heif teaches Pillow to read it (decode only, we always store JPEG).
pillow_heif.register_heif_opener()

DISPLAY_SIDE = 1600
THUMBNAIL_SIDE = 320
# A phone photo is at most ~50 MP; more pixels than this from a few MB is a decompression bomb.
MAX_PIXELS = 64_000_000
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


def process_photo(data: bytes, *, max_bytes: int) -> ProcessedPhoto:
    """Check and process one uploaded photo; raises PhotoRejected (413, 415 or 422) when refused."""
    if len(data) > max_bytes:
        raise PhotoRejected(413, f"the photo is {len(data)} bytes; the limit is {max_bytes} bytes")
    source_type = sniff_type(data)
    if source_type is None:
        raise PhotoRejected(415, "not a JPEG, PNG, WebP or HEIC image (checked from the file's bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in _PIL_FORMATS[source_type]:
                raise PhotoRejected(415, f"the file starts like {source_type} but is not one")
            # The header's size is known before decoding: refuse bombs without inflating them.
            if image.width * image.height > MAX_PIXELS:
                raise PhotoRejected(
                    422, f"the image claims {image.width}x{image.height} pixels; at most {MAX_PIXELS} are accepted"
                )
            gps = _gps_of(image)
            if image.format in ("JPEG", "MPO") and max(image.size) > DISPLAY_SIDE:
                # Decode at the smallest DCT scale still above the display size: a 12 MP phone photo
                # decodes at a quarter of its pixels, which is most of the cost of processing it.
                scale = DISPLAY_SIDE / max(image.size)
                image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            image.load()
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(422, "the image decompresses to too many pixels (decompression bomb)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds (OSError, SyntaxError, ValueError...)
        raise PhotoRejected(422, f"the image is corrupt or truncated ({type(exc).__name__})") from None
    ImageOps.exif_transpose(image, in_place=True)
    upright = _flatten(image)
    upright.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    display = _jpeg(upright)
    small = upright.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return ProcessedPhoto(
        display=display, thumbnail=_jpeg(small), width=upright.width, height=upright.height,
        source_type=source_type, sha256=hashlib.sha256(data).hexdigest(), gps=gps,
    )


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
