"""Pictures made for the tests with Pillow (no binaries in the repository), and the example issue
illustrated with them the way an editor would: a large photo, a small one, a logo, a map scan."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from .helpers import EXAMPLE_ISSUE

GPS_IFD = 0x8825
ORIENTATION = 0x0112
LONG_URL = "https://www.example.org/documentation/semipalatinsk-rapport-2006"  # 60 characters


def photo(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """Something like a photograph: gradients, shapes and grain, so it compresses as one does."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 24 + seed)
    image = Image.merge("RGB", (red, green, grain))
    draw = ImageDraw.Draw(image)
    for step in range(12):
        box = (step * width // 14, step * height // 30, (step + 2) * width // 14, height // 2)
        draw.ellipse(box, outline=(255, 240 - step * 12, 40), width=max(1, width // 200))
    return image


def save_jpeg(path: Path, image: Image.Image, *, gps: bool = False, orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    exif[ORIENTATION] = orientation
    if gps:
        position = exif.get_ifd(GPS_IFD)
        position.update({1: "N", 2: (50.0, 52.0, 36.0), 3: "E", 4: (4.0, 25.0, 12.0)})
    image.save(path, "JPEG", quality=95, exif=exif, comment=b"taken by the press office")
    return path


def logo(path: Path, width: int = 120, height: int = 60) -> Path:
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle(
        (2, 2, width - 3, height - 3), radius=12, fill=(0, 51, 102, 255)
    )
    image.save(path, "PNG")
    return path


@functools.cache
def week_pictures() -> dict[str, bytes]:
    """Made once per test run: the large ones take a few seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        save_jpeg(folder / "steppe.jpg", photo(1600, 1067), gps=True)
        save_jpeg(folder / "laboratoire.jpg", photo(400, 300, seed=5))
        logo(folder / "logo-partenariat.png")
        photo(3000, 2000, seed=9).save(folder / "carte-polygone.png")
        return {path.name: path.read_bytes() for path in folder.iterdir()}


def illustrate_example(workspace: Path) -> Path:
    """The example issue with the pictures of a real week: a 1600 px photo with GPS in its EXIF,
    a 400 px photo in an article that has no English translation, a 120 px logo, a 3000 × 2000
    map saved as PNG, and a bare 60-character URL."""
    folder = workspace / "issues" / EXAMPLE_ISSUE
    for name, data in week_pictures().items():
        (folder / name).write_bytes(data)

    def add(stem: str, fr: str, en: str) -> None:
        for name, text in ((f"{stem}.md", fr), (f"{stem}.en.md", en)):
            path = folder / name
            path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")

    add(
        "science-paix",
        "![La steppe autour de l'ancien polygone](steppe.jpg)\n\nRapport complet : " + LONG_URL,
        "![The steppe around the former test site](steppe.jpg)\n\nFull report: " + LONG_URL,
    )
    add(
        "transit-fias",
        "![Logo du Partenariat pour la paix](logo-partenariat.png)",
        "![Partnership for Peace logo](logo-partenariat.png)",
    )
    add(
        "plans-action",
        "![Carte du polygone de Semipalatinsk](carte-polygone.png)",
        "![Map of the Semipalatinsk test site](carte-polygone.png)",
    )
    (folder / "laboratoire.md").write_text(
        "---\ntitle: Un laboratoire de terrain à Kourtchatov\nsection: Multimédia\n---\n"
        "Les chercheurs analysent sur place les échantillons de sol prélevés dans la steppe.\n\n"
        "![Une chercheuse devant un spectromètre](laboratoire.jpg)\n",
        encoding="utf-8",
    )
    return folder
