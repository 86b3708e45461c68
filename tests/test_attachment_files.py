"""Uploads are judged by their bytes and kept without metadata (aftersales/attachments.py).

Every file here is built in the test: real JPEG/PNG/WebP/HEIC encodings from Pillow and
pillow_heif, hand-made PNG headers, PDF and MP4 boxes; nothing is read from disk or net.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pillow_heif
import pytest
from PIL import Image

from aftersales.attachments import (
    FileRefused,
    Limits,
    Prepared,
    prepare,
    safe_filename,
    sniff,
)
from aftersales.settings import MB, Settings

LIMITS = Limits.from_settings(Settings())
GPS_IFD = 0x8825
BODY_SERIAL = 0xA431
ORIENTATION = 0x0112
SERIAL = "SN-4711-SECRET"


def photo(size=(800, 600), mode="RGB", color=(200, 30, 30)) -> Image.Image:
    image = Image.new(mode, size, color)
    image.paste((20, 20, 220) if mode == "RGB" else 0, (0, 0, size[0] // 2, size[1] // 2))
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    exif[ORIENTATION] = orientation
    exif[BODY_SERIAL] = SERIAL
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (31.0, 14.0, 0.0)
    gps[3] = "E"
    gps[4] = (121.0, 28.0, 0.0)
    return exif


def png_header(width: int, height: int) -> bytes:
    """A PNG that says it is width × height: signature, IHDR, a tiny IDAT, IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4(payload: bytes = b"\x00" * 1000) -> bytes:
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    return ftyp + box(b"mdat", payload)


def pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
            b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def refused(data: bytes, name: str, limits: Limits = LIMITS) -> FileRefused:
    with pytest.raises(FileRefused) as caught:
        prepare(data, name, limits)
    assert caught.value.field == "file"
    assert caught.value.detail and caught.value.title
    return caught.value


def assert_thumbnail(prepared: Prepared) -> None:
    assert prepared.thumbnail is not None and prepared.thumbnail_type == "image/jpeg"
    assert sniff(prepared.thumbnail) == "image/jpeg"
    with Image.open(io.BytesIO(prepared.thumbnail)) as thumb:
        assert max(thumb.size) <= 320
        assert not thumb.getexif()


# --- images ------------------------------------------------------------------------------

def test_a_jpeg_loses_its_gps_and_camera_serial_and_gets_a_thumbnail():
    original = encode(photo((1200, 900)), "JPEG", exif=exif_with_gps(), quality=95)
    assert b"Exif\x00\x00" in original and SERIAL.encode() in original

    prepared = prepare(original, "IMG_0001.JPG", LIMITS)

    assert prepared.content_type == "image/jpeg"
    assert prepared.filename == "IMG_0001.JPG"
    assert b"Exif\x00\x00" not in prepared.data
    assert SERIAL.encode() not in prepared.data and b"Camera Maker" not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as stored:
        assert stored.format == "JPEG"
        assert not stored.getexif()
        assert "exif" not in stored.info and "xmp" not in stored.info
        assert stored.size == (1200, 900)
    assert (prepared.width, prepared.height) == (1200, 900)
    assert prepared.size == len(prepared.data)
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()
    assert_thumbnail(prepared)
    with Image.open(io.BytesIO(prepared.thumbnail or b"")) as thumb:
        assert thumb.size == (320, 240)


def test_a_sideways_phone_photo_is_stored_upright():
    # Orientation 6: the camera was turned; viewers rotate 90° clockwise.
    original = encode(photo((400, 300)), "JPEG", exif=exif_with_gps(orientation=6))
    prepared = prepare(original, "turned.jpg", LIMITS)
    assert (prepared.width, prepared.height) == (300, 400)
    with Image.open(io.BytesIO(prepared.data)) as stored:
        assert stored.size == (300, 400) and not stored.getexif()


def test_png_round_trip_keeps_pixels_and_transparency_and_drops_text():
    image = photo((300, 200), "RGBA", (10, 200, 10, 128))
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("Author", "Zhang San, 13800138000")
    original = encode(image, "PNG", pnginfo=info, exif=exif_with_gps())

    prepared = prepare(original, "screen.png", LIMITS)

    assert prepared.content_type == "image/png" and prepared.filename == "screen.png"
    assert b"Zhang San" not in prepared.data and SERIAL.encode() not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as stored:
        assert stored.format == "PNG" and stored.mode == "RGBA"
        assert not stored.getexif() and "Author" not in stored.info
        assert stored.tobytes() == image.tobytes()
    assert_thumbnail(prepared)


def test_webp_round_trip():
    original = encode(photo((640, 480)), "WEBP", quality=80, exif=exif_with_gps())
    assert SERIAL.encode() in original
    prepared = prepare(original, "pic.webp", LIMITS)
    assert prepared.content_type == "image/webp" and prepared.filename == "pic.webp"
    assert SERIAL.encode() not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as stored:
        assert stored.format == "WEBP" and stored.size == (640, 480)
        assert not stored.getexif()
    assert_thumbnail(prepared)


def test_a_heic_photo_becomes_a_jpeg():
    out = io.BytesIO()
    heif = pillow_heif.from_pillow(photo((500, 400)))
    heif.save(out, quality=80, exif=exif_with_gps().tobytes())
    original = out.getvalue()
    assert sniff(original) == "image/heic"

    prepared = prepare(original, "IMG_4242.HEIC", LIMITS)

    assert prepared.content_type == "image/jpeg"
    assert prepared.filename == "IMG_4242.jpg"
    assert SERIAL.encode() not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as stored:
        assert stored.format == "JPEG" and stored.size == (500, 400)
        assert not stored.getexif()
    assert_thumbnail(prepared)


def test_the_extension_follows_the_bytes_not_the_name():
    jpeg = encode(photo((64, 64)), "JPEG")
    assert prepare(jpeg, "photo.png", LIMITS).filename == "photo.jpg"
    assert prepare(jpeg, "photo.png", LIMITS).content_type == "image/jpeg"
    assert prepare(jpeg, "no extension", LIMITS).filename == "no extension.jpg"
    assert prepare(jpeg, "scan.jpeg", LIMITS).filename == "scan.jpeg"
    png = encode(photo((64, 64)), "PNG")
    assert prepare(png, "photo.jpg", LIMITS).filename == "photo.png"
    assert prepare(pdf(), "receipt.jpg", LIMITS).filename == "receipt.pdf"
    assert prepare(pdf(), "Invoice 2024.03", LIMITS).filename == "Invoice 2024.03.pdf"
    assert prepare(mp4(), "clip.mov", LIMITS).filename == "clip.mp4"
    renamed = prepare(jpeg, "x" * 200, LIMITS).filename
    assert len(renamed) == 200 and renamed.endswith("x.jpg")


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "photo.pdf", "photo.mp4",
                                  "photo.exe", "photo"])
def test_the_declared_name_never_decides_the_type(name):
    assert prepare(pdf(), name, LIMITS).content_type == "application/pdf"
    assert prepare(mp4(), name, LIMITS).content_type == "video/mp4"
    assert prepare(encode(photo((32, 32)), "PNG"), name, LIMITS).content_type == "image/png"
    assert refused(b"MZ" + b"\x90" * 200, name).status == 415


# --- PDF and MP4 ---------------------------------------------------------------------------

def test_a_pdf_is_stored_as_it_is():
    prepared = prepare(pdf(), "receipt.pdf", LIMITS)
    assert prepared.content_type == "application/pdf"
    assert prepared.data == pdf() and prepared.thumbnail is None
    assert prepared.width is None and prepared.height is None


def test_a_pdf_cut_short_is_damaged():
    assert refused(pdf()[:60], "receipt.pdf").status == 422


def test_a_minimal_mp4_is_a_video():
    data = mp4()
    assert sniff(data) == "video/mp4"
    prepared = prepare(data, "fault.mp4", LIMITS)
    assert prepared.content_type == "video/mp4" and prepared.data == data
    assert prepared.thumbnail is None and prepared.thumbnail_type is None


def test_an_mp4_cut_short_is_damaged():
    problem = refused(mp4()[:500], "fault.mp4")
    assert problem.status == 422 and problem.title == "Damaged file"


# --- types we do not take -----------------------------------------------------------------

def test_an_executable_named_like_a_photo_is_refused():
    problem = refused(b"MZ\x90\x00\x03" + bytes(range(256)) * 4, "photo.jpg")
    assert problem.status == 415 and problem.title == "Type not allowed"
    assert problem.detail == (
        "photo.jpg is a Windows executable, not an image; send a JPEG, PNG, WebP or "
        "HEIC photo, an MP4 video or a PDF.")


def test_an_svg_with_a_script_is_refused():
    svg = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
           b"<script>alert(document.cookie)</script></svg>")
    problem = refused(svg, "x.png")
    assert problem.status == 415 and "SVG/HTML" in problem.detail


def test_an_html_page_is_refused():
    problem = refused(b"<!DOCTYPE html><html><body><script>x()</script></body></html>",
                      "page.jpg")
    assert problem.status == 415 and "SVG/HTML" in problem.detail


def test_a_gif_is_refused():
    gif = encode(photo((16, 16)).convert("P"), "GIF")
    assert sniff(gif) is None
    problem = refused(gif, "anim.gif")
    assert problem.status == 415 and "GIF" in problem.detail


@pytest.mark.parametrize("data", [
    b"just some text\n",
    b"PK\x03\x04" + b"\x00" * 40,
    b"\x7fELF" + b"\x00" * 40,
    # ISO-BMFF but neither HEIF nor MP4: AVIF, QuickTime
    box(b"ftyp", b"avif\x00\x00\x00\x00avifmif1miaf") + box(b"mdat", b"\x00" * 8),
    box(b"ftyp", b"qt  \x00\x00\x02\x00qt  ") + box(b"mdat", b"\x00" * 8),
    b"RIFF\x10\x00\x00\x00AVI LIST",
])
def test_other_types_are_refused(data):
    assert sniff(data) is None
    assert refused(data, "file.jpg").status == 415


def test_an_empty_file_is_refused():
    assert refused(b"", "photo.jpg").status == 422


# --- sizes ---------------------------------------------------------------------------------

def test_a_60_mb_video_is_too_large():
    data = mp4(b"\x00" * (60 * MB))
    problem = refused(data, "long.mp4")
    assert problem.status == 413 and problem.title == "File too large"
    assert "50 MB" in problem.detail


def test_an_11_mb_image_is_too_large_before_decoding():
    # A JPEG header and then junk: refused on its size, never decoded.
    data = b"\xff\xd8\xff\xe0" + b"\x00" * (11 * MB)
    problem = refused(data, "big.jpg")
    assert problem.status == 413 and "10 MB" in problem.detail


def test_limits_come_from_the_settings():
    limits = Limits.from_settings(Settings(max_image=1 * MB, max_video=2 * MB))
    assert limits == Limits(max_image=1 * MB, max_video=2 * MB, max_pixels=40_000_000)
    assert refused(pdf() + b" " * MB, "r.pdf", limits).status == 413


def test_a_20000_by_20000_png_is_refused_without_allocating_it():
    data = png_header(20_000, 20_000)
    assert len(data) < 200
    problem = refused(data, "bomb.png")
    assert problem.status == 413 and "20000×20000" in problem.detail


def test_a_png_just_over_the_pixel_limit_is_refused():
    # 100 MP: between Pillow's own warning (89 MP) and error (179 MP) thresholds; the
    # suite runs with warnings as errors, so a warning from Pillow would show here.
    problem = refused(png_header(10_000, 10_000), "big.png")
    assert problem.status == 413
    small = Limits(max_image=10 * MB, max_video=50 * MB, max_pixels=100 * 100)
    assert refused(encode(photo((101, 100)), "PNG"), "p.png", small).status == 413
    assert prepare(encode(photo((100, 100)), "PNG"), "p.png", small).width == 100


def test_a_webp_canvas_is_checked_from_its_header():
    small = Limits(max_image=10 * MB, max_video=50 * MB, max_pixels=100 * 100)
    for options in ({"quality": 80}, {"lossless": True}, {"exif": exif_with_gps()}):
        data = encode(photo((120, 100)), "WEBP", **options)
        assert refused(data, "p.webp", small).status == 413, options


def test_a_truncated_jpeg_is_damaged():
    whole = encode(photo((800, 600)), "JPEG", quality=95)
    problem = refused(whole[:len(whole) // 2], "half.jpg")
    assert problem.status == 422 and problem.title == "Damaged file"


def test_a_png_with_a_broken_body_is_damaged():
    assert refused(png_header(64, 64), "broken.png").status == 422


def test_a_file_that_only_starts_like_an_image_is_damaged():
    assert refused(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "fake.png").status == 422
    assert refused(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40, "fake.webp").status == 422


# --- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "../etc/passwd.jpg", "a\\b.jpg", "x\x00.jpg", "evil\u202egpj.exe", "\x07bell.jpg",
    "", "   ", ".", "..", "a" * 201, "line\nbreak.jpg", "zero\u200bwidth.jpg",
])
def test_unsafe_names_are_refused(name):
    with pytest.raises(FileRefused) as caught:
        safe_filename(name)
    assert caught.value.status == 422 and caught.value.field == "file"
    assert refused(encode(photo((8, 8)), "PNG"), name).status == 422


def test_names_are_trimmed_and_may_be_any_language():
    assert safe_filename("  发票 2024.pdf \t") == "发票 2024.pdf"
    assert safe_filename("a" * 200) == "a" * 200
    assert safe_filename("..hidden.jpg") == "..hidden.jpg"


def test_the_name_is_checked_before_the_bytes():
    assert refused(b"MZ" + b"\x00" * 100, "../x.jpg").status == 422
