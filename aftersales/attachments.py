"""What an uploaded file really is, and a copy of it that is safe to keep and show.

Customers send photos of damaged goods, a video of a fault, a PDF receipt. The declared
name and content type are the sender's claim, so the type is decided from the bytes
alone (`sniff`) and the name only gets the matching extension. Photos from phones carry
EXIF: GPS position, camera serial, sometimes the owner's name; every image is decoded
and encoded again without any metadata, which also means a file that merely starts like
a JPEG cannot reach a browser as anything else. Sizes are checked before decoding, and
pixel counts before pixels are allocated, so a small file cannot ask for gigabytes.

Pure: bytes in, bytes out, Pillow in memory. Storing is `aftersales.blobs`.
"""

from __future__ import annotations

import hashlib
import io
import struct
import unicodedata
from dataclasses import dataclass
from typing import Any

import pillow_heif
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

__all__ = ["ACCEPTED", "FileRefused", "Limits", "Prepared", "prepare", "safe_filename",
           "sniff"]

MB = 1024 * 1024
MAX_NAME = 200
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 90
WEBP_QUALITY = 90
THUMBNAIL_QUALITY = 85

IMAGES = ("image/jpeg", "image/png", "image/webp", "image/heic")
VIDEOS = ("video/mp4",)
ACCEPTED = (*IMAGES, *VIDEOS, "application/pdf")
WHAT_WE_TAKE = "send a JPEG, PNG, WebP or HEIC photo, an MP4 video or a PDF"

# ISO-BMFF brands (the `ftyp` box): HEIF stills from phones, and MP4 video. AVIF and
# QuickTime are ISO-BMFF too but are neither.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs",
                         b"mif1", b"msf1"})
MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41",
                        b"mp42", b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"mp4v",
                        b"MSNV", b"f4v "})
NOT_HEIF_BRANDS = frozenset({b"avif", b"avis"})

# The extension the stored name gets; a name already ending in one of its spellings
# keeps it.
EXTENSIONS = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/webp": (".webp",),
    "video/mp4": (".mp4",),
    "application/pdf": (".pdf",),
}
# A suffix that is replaced rather than kept before the new extension: "photo.png" that
# is a JPEG becomes "photo.jpg", but "Invoice 2024.03" becomes "Invoice 2024.03.pdf".
KNOWN_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".heic", ".heif", ".hif",
    ".avif", ".gif", ".bmp", ".tif", ".tiff", ".svg", ".svgz", ".ico", ".mp4", ".m4v",
    ".mov", ".qt", ".avi", ".mkv", ".webm", ".3gp", ".pdf", ".exe", ".dll", ".scr",
    ".com", ".bat", ".cmd", ".msi", ".js", ".vbs", ".ps1", ".sh", ".html", ".htm",
    ".xhtml", ".xml", ".txt", ".zip", ".rar", ".7z", ".gz", ".doc", ".docx", ".xls",
    ".xlsx",
})
# Cc: controls (NUL, BEL, newline...); Cf: format characters, among them the
# right-to-left override that shows "evil\u202egpj.exe" as "evilexe.jpg"; Cs: lone
# surrogates; Zl/Zp: line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Pillow's errors for a file that is not what its header says, or stops early.
DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
           struct.error)


class FileRefused(Exception):
    """An upload that is not kept; `status`, `title` and `detail` make the problem+json."""

    field = "file"

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_image: int  # bytes, an image or a PDF
    max_video: int  # bytes
    max_pixels: int = 40_000_000  # width × height of an image

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """From any object with `max_image` and `max_video` (aftersales.settings.Settings)."""
        return cls(max_image=int(settings.max_image), max_video=int(settings.max_video))


@dataclass(frozen=True)
class Prepared:
    """The file as it is stored: its bytes (re-encoded for images) and what shows it."""

    filename: str
    content_type: str
    data: bytes
    size: int
    sha256: str
    thumbnail: bytes | None
    thumbnail_type: str | None
    width: int | None
    height: int | None


def sniff(data: bytes) -> str | None:
    """The content type from the bytes' magic numbers; None for anything not accepted."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:5] == b"%PDF-":
        return "application/pdf"
    if data[4:8] == b"ftyp":
        return _iso_bmff_type(data)
    return None


def _iso_bmff_type(data: bytes) -> str | None:
    """HEIF or MP4 from the `ftyp` box: the major brand decides, else the compatible ones."""
    size = int.from_bytes(data[:4], "big")
    if size < 16 or size > len(data):
        return None
    major = data[8:12]
    compatible = {data[i:i + 4] for i in range(16, size - 3, 4)}
    for brands in ({major}, compatible):
        if brands & NOT_HEIF_BRANDS:
            return None
        if brands & HEIF_BRANDS:
            return "image/heic"
        if brands & MP4_BRANDS:
            return "video/mp4"
    return None


def describe(data: bytes) -> str:
    """What a refused file looks like, where that is cheap to tell, for the message."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and any(word in head for word in (b"<svg", b"<html", b"<!doctype",
                                                               b"<?xml", b"<script")):
        return "an SVG/HTML document"
    if data[:2] == b"MZ":
        return "a Windows executable"
    if data[:4] == b"\x7fELF":
        return "a Linux executable"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    if data[:4] == b"PK\x03\x04":
        return "a ZIP archive"
    return "not a type we accept"


def safe_filename(name: str) -> str:
    """The name without surrounding whitespace; FileRefused (422) for one that is not safe."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise _bad_name("The file has no name; give it one like photo.jpg.")
    if len(name) > MAX_NAME:
        raise _bad_name(f"The file name is {len(name)} characters long; "
                        f"at most {MAX_NAME} are allowed.")
    if "/" in name or "\\" in name:
        raise _bad_name(f"The file name {name!r} contains a slash; send the file's own "
                        "name without folders.")
    if any(unicodedata.category(char) in REFUSED_CATEGORIES for char in name):
        raise _bad_name(f"The file name {name!r} contains control or invisible formatting "
                        "characters; rename the file using letters, digits and punctuation.")
    if name in (".", ".."):
        raise _bad_name(f"{name!r} is not a file name; give the file a name like photo.jpg.")
    return name


def _bad_name(detail: str) -> FileRefused:
    return FileRefused(422, "Bad file name", detail)


def prepare(data: bytes, filename: str, limits: Limits) -> Prepared:
    """The upload checked and made safe; FileRefused (413, 415 or 422) if it is not kept."""
    name = safe_filename(filename)
    if not data:
        raise FileRefused(422, "Empty file", f"{name} is empty; send the file again.")
    content_type = sniff(data)
    if content_type is None:
        raise FileRefused(415, "Type not allowed", _not_allowed(name, data))
    _check_size(name, len(data), content_type, limits)
    thumbnail: bytes | None = None
    width: int | None = None
    height: int | None = None
    if content_type in IMAGES:
        image = _decode(data, name, content_type, limits)
        content_type, data = _encode(image, content_type)
        thumbnail = _thumbnail(image)
        width, height = image.size
    elif content_type == "application/pdf":
        _check_pdf(data, name)
    else:
        _check_mp4(data, name)
    return Prepared(
        filename=with_extension(name, content_type), content_type=content_type, data=data,
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), thumbnail=thumbnail,
        thumbnail_type="image/jpeg" if thumbnail is not None else None,
        width=width, height=height)


def _not_allowed(name: str, data: bytes) -> str:
    what = describe(data)
    if what == "not a type we accept":
        return f"{name} is not a type we accept; {WHAT_WE_TAKE}."
    return f"{name} is {what}, not an image; {WHAT_WE_TAKE}."


def _check_size(name: str, size: int, content_type: str, limits: Limits) -> None:
    video = content_type in VIDEOS
    limit = limits.max_video if video else limits.max_image
    if size > limit:
        kind = "a video" if video else "an image or a PDF"
        raise FileRefused(413, "File too large",
                          f"{name} is {_mb(size)}; {kind} may be at most {_mb(limit)}.")


def _mb(size: int) -> str:
    value = size / MB
    return f"{value:.0f} MB" if value == int(value) or value >= 10 else f"{value:.1f} MB"


# --- images -------------------------------------------------------------------------------

# The format plugins are constructed directly rather than through Image.open: that reads
# the header only (no pixels yet), never tries other formats than the sniffed one, and
# skips Image.open's own decompression-bomb warning (a process-wide warnings filter is no
# way to handle one request) so that the limit below is the one that answers.
OPENERS: dict[str, type[ImageFile.ImageFile]] = {
    "image/jpeg": JpegImagePlugin.JpegImageFile,
    "image/png": PngImagePlugin.PngImageFile,
    "image/webp": WebPImagePlugin.WebPImageFile,
    "image/heic": pillow_heif.HeifImageFile,
}


def _decode(data: bytes, name: str, content_type: str, limits: Limits) -> Image.Image:
    """The image's pixels, upright; its size checked before they are allocated."""
    if content_type == "image/webp":
        # libwebp allocates the canvas while opening: its size is read from the header.
        _check_pixels(name, _webp_size(data), limits)
    try:
        image = OPENERS[content_type](io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(name, None, limits) from exc
    except DAMAGED as exc:
        raise _damaged(name) from exc
    _check_pixels(name, image.size, limits)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(name, image.size, limits) from exc
    except DAMAGED as exc:
        raise _damaged(name) from exc
    # What survives of the original's info: transparency is part of the pixels; EXIF, XMP,
    # ICC, text chunks and comments are not.
    upright.info = {key: upright.info[key] for key in ("transparency",) if key in upright.info}
    return upright


def _check_pixels(name: str, size: tuple[int, int] | None, limits: Limits) -> None:
    if size is not None and size[0] * size[1] > limits.max_pixels:
        raise _too_many_pixels(name, size, limits)


def _too_many_pixels(name: str, size: tuple[int, int] | None, limits: Limits) -> FileRefused:
    most = f"an image may have at most {limits.max_pixels / 1e6:g} megapixels"
    if size is None:
        return FileRefused(413, "Image too large", f"{name} has too many pixels; {most}.")
    megapixels = size[0] * size[1] / 1e6
    return FileRefused(413, "Image too large",
                       f"{name} is {size[0]}×{size[1]} pixels ({megapixels:g} megapixels); "
                       f"{most}.")


def _damaged(name: str) -> FileRefused:
    return FileRefused(422, "Damaged file",
                       f"{name} is damaged or incomplete and cannot be read; send it again.")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas width and height from a WebP header (VP8X, VP8 or VP8L); None if unreadable."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 " and len(data) >= 30:
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _encode(image: Image.Image, content_type: str) -> tuple[str, bytes]:
    """The pixels in a fresh file of the same format (HEIC becomes JPEG), no metadata."""
    out = io.BytesIO()
    if content_type == "image/png":
        image.save(out, "PNG", optimize=True)
    elif content_type == "image/webp":
        webp = image if image.mode in ("RGB", "RGBA") else image.convert(
            "RGBA" if _has_alpha(image) else "RGB")
        webp.save(out, "WEBP", quality=WEBP_QUALITY)
    else:
        _flatten(image).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    return content_type, out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG whose longest side is at most 320 px."""
    small = image.convert("RGBA" if _has_alpha(image) else "RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    _flatten(small).save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L for JPEG: transparent parts on white."""
    if image.mode in ("RGB", "L"):
        return image
    if not _has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    white = Image.new("RGB", rgba.size, "white")
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white


# --- PDF and MP4: kept as they are --------------------------------------------------------

def _check_pdf(data: bytes, name: str) -> None:
    """A PDF ends with %%EOF (readers look in the last KiB; a little more is allowed)."""
    if b"%%EOF" not in data[-4096:]:
        raise _damaged(name)


def _check_mp4(data: bytes, name: str) -> None:
    """The top-level boxes fill the file exactly: an upload cut short is refused."""
    position, end = 0, len(data)
    while position < end:
        if end - position < 8:
            raise _damaged(name)
        size, header = int.from_bytes(data[position:position + 4], "big"), 8
        if size == 1:  # a 64-bit size follows the type
            if end - position < 16:
                raise _damaged(name)
            size, header = int.from_bytes(data[position + 8:position + 16], "big"), 16
        elif size == 0:  # the box runs to the end of the file
            size = end - position
        if size < header or position + size > end:
            raise _damaged(name)
        position += size


def with_extension(name: str, content_type: str) -> str:
    """The name ending in the extension of its real type (photo.png that is JPEG: photo.jpg)."""
    spellings = EXTENSIONS[content_type]
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and f".{suffix.lower()}" in spellings:
        return name
    if dot and stem and f".{suffix.lower()}" in KNOWN_SUFFIXES:
        name = stem
    return name[:MAX_NAME - len(spellings[0])] + spellings[0]
