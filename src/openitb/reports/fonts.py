"""Unicode text for the PDFs: embedded TrueType fonts, and a run-by-run choice of font so that
every character of a name prints or, where no font on the system has it, is shown transliterated
(never as a black box).

- DejaVu Sans (shipped inside matplotlib, which the project already depends on): Latin with
  every European diacritic, Greek, Cyrillic.
- A CJK TrueType font when the system has one (looked for, never required): IPA Gothic
  (Debian fonts-ipafont-gothic), Droid Sans Fallback (fonts-droid-fallback), WenQuanYi Zen Hei
  (fonts-wqy-zenhei), or any file named in ``OPENITB_CJK_FONT``. reportlab embeds TrueType
  outlines only, so the OpenType/CFF Noto CJK fonts cannot be used.
- Anything else: the anyascii transliteration in its place, and the document says so."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from anyascii import anyascii
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

CJK_CANDIDATES = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
TRANSLITERATED_NOTE = ("Some characters of this text could not be printed with the fonts on "
                       "this system and are shown transliterated.")


def _dejavu(bold: bool) -> Path:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def _cjk_path() -> Path | None:
    named = os.environ.get("OPENITB_CJK_FONT", "").strip()
    for candidate in ([named] if named else []) + list(CJK_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass
class Fonts:
    regular: str
    bold: str
    cjk: str | None
    coverage: dict[str, set[int]] = field(default_factory=dict)

    def covers(self, font: str, ch: str) -> bool:
        return ord(ch) in self.coverage[font] or ch in " \t"


def _register(name: str, path: Path) -> set[int]:
    font = TTFont(name, str(path), subfontIndex=0) if path.suffix == ".ttc" \
        else TTFont(name, str(path))
    pdfmetrics.registerFont(font)
    return set(font.face.charToGlyph)


@functools.cache
def fonts() -> Fonts:
    out = Fonts("OpenITB-Sans", "OpenITB-Sans-Bold", None)
    out.coverage[out.regular] = _register(out.regular, _dejavu(False))
    out.coverage[out.bold] = _register(out.bold, _dejavu(True))
    path = _cjk_path()
    if path is not None:
        try:
            out.coverage["OpenITB-CJK"] = _register("OpenITB-CJK", path)
            out.cjk = "OpenITB-CJK"
        except Exception:  # a font reportlab cannot embed: go on without CJK
            out.cjk = None
    return out


def runs(text: str, bold: bool = False) -> tuple[list[tuple[str, str]], bool]:
    """``text`` cut into (font, text) runs; the flag says whether anything was transliterated."""
    f = fonts()
    main = f.bold if bold else f.regular
    out: list[tuple[str, str]] = []
    transliterated = False
    for ch in text:
        if f.covers(main, ch):
            font, piece = main, ch
        elif f.cjk is not None and f.covers(f.cjk, ch):
            font, piece = f.cjk, ch
        else:
            font, piece = main, anyascii(ch) or "?"
            transliterated = True
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + piece)
        else:
            out.append((font, piece))
    return out, transliterated


def width(text: str, size: float, bold: bool = False) -> float:
    return float(sum(pdfmetrics.stringWidth(t, font, size) for font, t in runs(text, bold)[0]))


def draw(c: Canvas, x: float, y: float, text: str, size: float, bold: bool = False) -> bool:
    """Draw ``text`` at (x, y); True when part of it had to be transliterated."""
    pieces, transliterated = runs(text, bold)
    for font, piece in pieces:
        c.setFont(font, size)
        c.drawString(x, y, piece)
        x += pdfmetrics.stringWidth(piece, font, size)
    return transliterated
