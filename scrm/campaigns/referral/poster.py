"""Referral posters (邀请海报): a PNG with the campaign's text and the inviter's QR code, drawn locally (Pillow for
the picture, segno for the QR code) — nothing is fetched from the internet.

The QR code encodes the code's link (the contact way's / join way's ``qr_code``), so scanning the poster leads where
scanning WeCom's own code image does. Chinese needs a CJK font: ``poster_font`` (setting ``SCRM_POSTER_FONT``) or the
first of :data:`FONT_CANDIDATES` found; without one the poster still renders, with Pillow's built-in font (Chinese
characters then show as boxes) and a warning in the log.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageFont

log = logging.getLogger(__name__)

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",  # Debian / Ubuntu fonts-noto-cjk
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch, Fedora
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",  # macOS
)
WIDTH, HEIGHT = 750, 1200
MARGIN = 60
BACKGROUND = (255, 244, 230)
ACCENT = (230, 81, 0)
INK = (51, 51, 51)
MUTED = (120, 120, 120)
QR_SIZE = 400
MAX_BODY_LINES = 7


@dataclass(frozen=True)
class PosterContent:
    title: str  # the campaign's name
    body: str  # the campaign's poster text (may be several lines)
    reward: str  # "邀请 3 位好友得 满100减10"
    link: str  # what the QR code encodes
    footer: str = "长按识别二维码，添加顾问"


def find_font(configured: str = "") -> str | None:
    """The font file to draw with: the configured one if it exists, else the first candidate present."""
    for path in (configured, *FONT_CANDIDATES):
        if path and Path(path).is_file():
            return path
    return None


@lru_cache(maxsize=32)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont  # Pillow loads with the first poster, not in every server at start (see render_poster)

    if path is None:
        return ImageFont.load_default(size)
    # Noto's CJK collections hold JP, KR, SC, TC, HK faces in that order: SC draws Simplified Chinese glyph shapes.
    index = 2 if "NotoSansCJK" in path and path.endswith(".ttc") else 0
    return ImageFont.truetype(path, size, index=index)


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` px, character by character (Chinese has no spaces);
    the text's own line breaks are kept."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for ch in paragraph:
            if line and font.getlength(line + ch) > width:
                lines.append(line)
                line = ch
            else:
                line += ch
        lines.append(line)
    return lines


def qr_image(link: str, size: int) -> Image.Image:
    """The QR code of ``link`` as a black-on-white square of about ``size`` px (whole pixels per module)."""
    import segno
    from PIL import Image

    qr = segno.make(link, error="m", micro=False)
    rows = [bytes(0 if dark else 255 for dark in row) for row in qr.matrix_iter(scale=1, border=2)]
    modules = len(rows)
    small = Image.frombytes("L", (modules, modules), b"".join(rows))
    scale = max(size // modules, 1)
    return small.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def render_poster(content: PosterContent, font_path: str | None) -> bytes:
    """The poster as PNG bytes (750×1200)."""
    # Pillow (≈6 MiB with its libraries) and segno are imported by the first poster drawn: most processes draw none.
    from PIL import Image, ImageDraw

    if font_path is None:
        log.warning("no CJK font found for referral posters: set SCRM_POSTER_FONT (e.g. install fonts-noto-cjk)")
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 18), fill=ACCENT)
    inner = WIDTH - 2 * MARGIN
    y = 70
    title_font = _font(font_path, 52)
    for line in wrap(content.title, title_font, inner)[:2]:
        draw.text((WIDTH / 2, y), line, font=title_font, fill=ACCENT, anchor="ma")
        y += 70
    y += 24
    body_font = _font(font_path, 30)
    body = wrap(content.body, body_font, inner) if content.body.strip() else []
    for line in body[:MAX_BODY_LINES]:
        draw.text((MARGIN, y), line, font=body_font, fill=INK)
        y += 44
    y += 16
    reward_font = _font(font_path, 34)
    for line in wrap(content.reward, reward_font, inner)[:2]:
        draw.text((WIDTH / 2, y), line, font=reward_font, fill=ACCENT, anchor="ma")
        y += 50
    code = qr_image(content.link, QR_SIZE)
    box = code.width + 40
    top = max(y + 20, HEIGHT - box - 150)
    left = (WIDTH - box) // 2
    draw.rounded_rectangle((left, top, left + box, top + box), radius=16, fill=(255, 255, 255))
    image.paste(code, (left + 20, top + 20))
    footer_font = _font(font_path, 28)
    draw.text((WIDTH / 2, top + box + 30), content.footer, font=footer_font, fill=MUTED, anchor="ma")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


@lru_cache(maxsize=128)
def cached_poster(content: PosterContent, font_path: str | None) -> bytes:
    """:func:`render_poster`, remembered per content (≈60 KB each): the poster link is public and forwarded, so the
    same poster is asked for again and again; a changed campaign text is a different content."""
    return render_poster(content, font_path)
