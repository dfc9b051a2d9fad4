"""Procedural faces with known CelebA attributes: the built-in data set.

Each image is drawn from its own random stream ``(seed, index)``, so any subset can be rendered in any
order, in parallel, and comes out the same. Faces vary in pose (position, scale, roll, a yaw-like shift
of the features), skin, hair, background and accessories; every attribute below changes pixels in a
way a model can learn, with CelebA's names so that the same code runs on either data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# CelebA's names, in CelebA's order.
ATTRIBUTES: tuple[str, ...] = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows", "Eyeglasses", "Gray_Hair",
    "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Rosy_Cheeks",
    "Smiling", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Young",
)

CANVAS = 128  # faces are drawn at this side, then resized with antialiasing

_SKIN = np.array([[255, 219, 190], [241, 194, 155], [224, 172, 125], [198, 134, 94], [160, 105, 70], [110, 70, 45]])
_PALE = np.array([[255, 236, 226], [250, 230, 215]])
_HAIR = {
    "Black_Hair": [25, 22, 22], "Blond_Hair": [232, 200, 120], "Brown_Hair": [110, 70, 40],
    "Gray_Hair": [175, 175, 180], "red": [160, 60, 30],
}


def sample_attributes(rng: np.random.Generator) -> dict[str, int]:
    """Correlated like CelebA (lipstick mostly on women, baldness and beards on men, grey hair on the old),
    with rare attributes made common enough to learn."""
    a = dict.fromkeys(ATTRIBUTES, 0)
    a["Male"] = int(rng.random() < 0.42)
    a["Young"] = int(rng.random() < 0.75)
    a["Smiling"] = int(rng.random() < 0.48)
    a["Mouth_Slightly_Open"] = int(rng.random() < 0.45)
    a["Eyeglasses"] = int(rng.random() < 0.2)
    a["Wearing_Hat"] = int(rng.random() < 0.12)
    a["Pale_Skin"] = int(rng.random() < 0.12)
    a["Rosy_Cheeks"] = int(rng.random() < 0.12)
    a["Bushy_Eyebrows"] = int(rng.random() < (0.3 if a["Male"] else 0.1))
    a["Bald"] = int(a["Male"] and not a["Young"] and rng.random() < 0.35)
    if not a["Bald"]:
        if not a["Young"] and rng.random() < 0.55:
            a["Gray_Hair"] = 1
        else:
            colour = rng.choice(["Black_Hair", "Blond_Hair", "Brown_Hair", "red"], p=[0.33, 0.25, 0.3, 0.12])
            if colour != "red":
                a[str(colour)] = 1
        a["Bangs"] = int(rng.random() < 0.2)
    if a["Male"]:
        a["Mustache"] = int(rng.random() < 0.2)
        a["No_Beard"] = int(rng.random() < 0.7)
    else:
        a["No_Beard"] = 1
        a["Wearing_Lipstick"] = int(rng.random() < 0.7)
        a["Heavy_Makeup"] = int(a["Wearing_Lipstick"] and rng.random() < 0.5)
        a["Wearing_Earrings"] = int(rng.random() < 0.35)
    return a


def _hair_colour(a: dict[str, int]) -> np.ndarray:
    for name in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"):
        if a[name]:
            return np.array(_HAIR[name])
    return np.array(_HAIR["red"])


def _rgb(c, rng: np.random.Generator | None = None, jitter: float = 0.0) -> tuple[int, int, int]:
    c = np.asarray(c, dtype=float)
    if rng is not None and jitter:
        c = c + rng.normal(0, jitter, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _background(rng: np.random.Generator) -> Image.Image:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, CANVAS)
    kind = rng.integers(0, 3)
    if kind == 0:
        ramp = np.broadcast_to(t[:, None], (CANVAS, CANVAS))
    elif kind == 1:
        ramp = np.broadcast_to(t[None, :], (CANVAS, CANVAS))
    else:
        ramp = (t[:, None] + t[None, :]) / 2
    img = c0[None, None, :] * (1 - ramp[..., None]) + c1[None, None, :] * ramp[..., None]
    bg = Image.fromarray(img.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(bg)
    for _ in range(rng.integers(0, 4)):  # soft shapes behind the head
        x, y, r = rng.integers(0, CANVAS, 2).tolist() + [int(rng.integers(8, 40))]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_rgb(rng.integers(0, 256, 3)))
    return bg


@dataclass
class _Head:
    """Where one face is drawn and what it is: the canvas's draw, the head's centre and half-axes, the sideways
    shift of the features (yaw), skin and hair colours, the attributes and the face's random stream. The steps
    below draw on it back to front; each draws from ``rng`` in a fixed order, so a face is the same image for
    the same (seed, index) whatever else changes (the cached data sets and the evaluator depend on it)."""

    d: ImageDraw.ImageDraw
    rng: np.random.Generator
    a: dict[str, int]
    cx: float
    cy: float
    hw: float
    hh: float
    yaw: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]

    @property
    def long_hair(self) -> bool:
        return not self.a["Male"] and not self.a["Bald"]


def render_face(rng: np.random.Generator, a: dict[str, int]) -> Image.Image:
    """Draw one face with attributes ``a`` on a CANVAS x CANVAS RGB image."""
    skin = _rgb(_PALE[rng.integers(len(_PALE))] if a["Pale_Skin"] else _SKIN[rng.integers(len(_SKIN))], rng, 6)
    hair = _rgb(_hair_colour(a), rng, 12)
    layer = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    hw, hh = (27 if a["Male"] else 24) + rng.normal(0, 1.5), 33 + rng.normal(0, 1.5)  # head half-axes
    yaw = rng.uniform(-5, 5)  # features shift sideways, as if the head turned
    head = _Head(ImageDraw.Draw(layer), rng, a, CANVAS / 2, CANVAS / 2 + 4, hw, hh, yaw, skin, hair)
    for step in (_shoulders_and_hair_behind, _ears_head_and_jaw, _hair_and_hat, _eyes_and_glasses,
                 _nose_cheeks_and_mouth):
        step(head)
    return _posed_on_background(layer, head)


def _shoulders_and_hair_behind(h: _Head) -> None:
    d, cx, cy, hw, hh = h.d, h.cx, h.cy, h.hw, h.hh
    d.ellipse([cx - 52, cy + hh + 2, cx + 52, cy + hh + 70], fill=_rgb(h.rng.integers(0, 256, 3)))
    d.rectangle([cx - 10, cy + hh - 10, cx + 10, cy + hh + 12], fill=h.skin)
    if h.long_hair:
        d.rounded_rectangle([cx - hw - 7, cy - hh - 4, cx + hw + 7, cy + hh + h.rng.uniform(5, 25)], 14, fill=h.hair)


def _ears_head_and_jaw(h: _Head) -> None:
    """Ears (with earrings), head, jaw, beard, and an older face's lines."""
    d, a, cx, cy, hw, hh, yaw, skin = h.d, h.a, h.cx, h.cy, h.hw, h.hh, h.yaw, h.skin
    for side in (-1, 1):
        ex = cx + side * (hw - 1)
        d.ellipse([ex - 5, cy - 6, ex + 5, cy + 8], fill=skin)
        if a["Wearing_Earrings"]:
            d.ellipse([ex - 5, cy + 7, ex + 5, cy + 17], fill=(250, 215, 60))
    d.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=skin)
    if a["Male"]:
        d.rectangle([cx - hw + 3, cy + 4, cx + hw - 3, cy + hh - 10], fill=skin)
        d.ellipse([cx - hw + 3, cy + hh - 22, cx + hw - 3, cy + hh + 1], fill=skin)
    if not a["No_Beard"]:
        d.chord([cx - hw + 2, cy - 4, cx + hw - 2, cy + hh + 2], 0, 180, fill=h.hair)
    if not a["Young"]:  # forehead lines and nose-to-mouth folds, thick enough to survive 32 px
        wrinkle = _rgb(np.array(skin) * 0.62)
        for k in range(3):
            y = cy - hh * 0.6 + 5 * k
            d.line([cx - 13 + yaw, y, cx + 13 + yaw, y], fill=wrinkle, width=3)
        for side in (-1, 1):
            d.line([cx + side * 7 + yaw, cy + 6, cx + side * 13 + yaw, cy + 20], fill=wrinkle, width=3)


def _hair_and_hat(h: _Head) -> None:
    """Hair on top (or a bald head's sides), bangs, hat."""
    d, a, cx, cy, hw, hh, hair = h.d, h.a, h.cx, h.cy, h.hw, h.hh, h.hair
    if not a["Bald"]:
        top = [cx - hw - 2, cy - hh - 5, cx + hw + 2, cy + hh * (0.2 if h.long_hair else -0.1)]
        d.chord(top, 180, 360, fill=hair)
    else:
        for side in (-1, 1):
            d.chord([cx + side * hw - 7, cy - 14, cx + side * hw + 7, cy + 6], 0, 360, fill=hair)
    if a["Bangs"]:
        pts = [(cx - hw + 2, cy - hh * 0.55)]
        for k in range(7):
            x = cx - hw + 2 + (k + 0.5) * (2 * hw - 4) / 7
            pts.append((x, cy - hh * 0.3 + (4 if k % 2 else 0)))
        pts += [(cx + hw - 2, cy - hh * 0.55), (cx + hw - 4, cy - hh * 0.85), (cx - hw + 4, cy - hh * 0.85)]
        d.polygon(pts, fill=hair)
    if a["Wearing_Hat"]:
        hat = _rgb(h.rng.integers(0, 256, 3))
        d.chord([cx - hw - 3, cy - hh - 16, cx + hw + 3, cy - hh * 0.2], 180, 360, fill=hat)
        d.rectangle([cx - hw - 10, cy - hh * 0.45, cx + hw + 10, cy - hh * 0.3], fill=hat)


def _eyes_and_glasses(h: _Head) -> None:
    """Eyes, brows, make-up, glasses."""
    d, a, rng, cx, yaw = h.d, h.a, h.rng, h.cx, h.yaw
    ey = h.cy - 5
    for side in (-1, 1):
        ex = cx + side * 11 + yaw
        if a["Heavy_Makeup"]:
            d.ellipse([ex - 9, ey - 8, ex + 9, ey + 3], fill=_rgb([120, 60, 140], rng, 20))
        d.ellipse([ex - 6, ey - 3, ex + 6, ey + 3], fill=(250, 250, 250))
        d.ellipse([ex - 2.5, ey - 2.5, ex + 2.5, ey + 2.5], fill=_rgb([60, 40, 30], rng, 15))
        brow = 6 if a["Bushy_Eyebrows"] else 2
        d.line([ex - 7, ey - 8, ex + 7, ey - 8 - side * 0.5], fill=h.hair if not a["Bald"] else (60, 50, 40),
               width=brow)
    if a["Eyeglasses"]:
        frame = _rgb([20, 20, 20] if rng.random() < 0.6 else rng.integers(0, 256, 3))
        for side in (-1, 1):
            ex = cx + side * 11 + yaw
            d.ellipse([ex - 9, ey - 7, ex + 9, ey + 7], outline=frame, width=3)
            d.line([ex + side * 9, ey, cx + side * h.hw, ey - 2], fill=frame, width=3)
        d.line([cx - 2 + yaw, ey, cx + 2 + yaw, ey], fill=frame, width=3)


def _nose_cheeks_and_mouth(h: _Head) -> None:
    """Nose, cheeks, mouth, moustache. The mouth: closed (a line), slightly open (a dark oval), smiling (a wide
    half-moon showing teeth, dark inside too when also open). Sizes in canvas pixels: at 32 px each is 4 canvas
    pixels."""
    d, a, cx, yaw = h.d, h.a, h.cx, h.yaw
    ey = h.cy - 5
    d.line([cx + yaw, ey + 3, cx + yaw + 2, ey + 13, cx + yaw - 2, ey + 14], fill=_rgb(np.array(h.skin) * 0.7), width=1)
    if a["Rosy_Cheeks"]:
        for side in (-1, 1):
            x = cx + side * 15 + yaw
            d.ellipse([x - 5, ey + 10, x + 5, ey + 17], fill=(235, 120, 130))
    my, mw = h.cy + 18, 9 + (5 if a["Smiling"] else 0)
    lips = (200, 30, 50) if a["Wearing_Lipstick"] else _rgb(np.array(h.skin) * [0.75, 0.55, 0.55])
    if a["Smiling"]:
        depth = 12 if a["Mouth_Slightly_Open"] else 8
        d.chord([cx - mw + yaw, my - depth, cx + mw + yaw, my + depth], 0, 180,
                fill=(60, 15, 20) if a["Mouth_Slightly_Open"] else (245, 242, 235), outline=lips, width=4)
        if a["Mouth_Slightly_Open"]:
            d.rectangle([cx - mw * 0.6 + yaw, my + 1, cx + mw * 0.6 + yaw, my + 4], fill=(245, 242, 235))
    elif a["Mouth_Slightly_Open"]:
        d.ellipse([cx - mw * 0.8 + yaw, my - 4, cx + mw * 0.8 + yaw, my + 8], fill=(60, 15, 20), outline=lips, width=3)
    else:
        d.line([cx - mw + yaw, my, cx + mw + yaw, my], fill=lips, width=4)
    if a["Mustache"]:
        d.chord([cx - 10 + yaw, my - 9, cx + 10 + yaw, my - 1], 180, 360, fill=h.hair)


def _posed_on_background(layer: Image.Image, h: _Head) -> Image.Image:
    """Roll about the face centre, then shift and scale, onto the background."""
    rng = h.rng
    scale = rng.uniform(0.82, 1.08)
    size = max(1, int(round(CANVAS * scale)))
    layer = layer.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, center=(h.cx, h.cy)).resize(
        (size, size), Image.BICUBIC)
    bg = _background(rng).convert("RGBA")
    ox = (CANVAS - size) // 2 + int(rng.normal(0, 4))
    oy = (CANVAS - size) // 2 + int(rng.normal(0, 3))
    bg.alpha_composite(layer, dest=(max(0, ox), max(0, oy)), source=(max(0, -ox), max(0, -oy)))
    return bg.convert("RGB")


def face(seed: int, index: int, size: int) -> tuple[np.ndarray, dict[str, int]]:
    """Image ``index`` of the data set ``seed``: uint8 [size, size, 3] and its attributes (0/1)."""
    rng = np.random.default_rng([seed, index])
    attributes = sample_attributes(rng)
    image = render_face(rng, attributes).resize((size, size), Image.LANCZOS)
    return np.asarray(image, dtype=np.uint8), attributes
