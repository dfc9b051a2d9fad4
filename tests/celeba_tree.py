"""Small trees in exactly CelebA's on-disk layout, for tests and benchmarks (CelebA itself cannot be
downloaded here). Faces come from the procedural renderer, resized to CelebA's 178x218."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaegan_dist.data.synthetic_faces import face

CELEBA_40 = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def attribute_row(index: int) -> list[int]:
    rng = np.random.default_rng(index)
    return [int(v) for v in rng.choice([-1, 1], size=40)]


def make_celeba_tree(root: Path, n: int = 30, truncated: tuple[int, ...] = (), bad_rows: tuple[int, ...] = (),
                     missing: tuple[int, ...] = ()) -> dict[str, dict]:
    """Write n images 000001.jpg ... with CelebA's three files; returns {file: {"split", "attributes"}}
    for the images that should survive conversion. Partition: every 5th image valid, every 7th test."""
    root = Path(root)
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    expected, attr_lines, partition_lines = {}, [], []
    for i in range(1, n + 1):
        file = f"{i:06d}.jpg"
        pixels, _ = face(7, i, 218)
        Image.fromarray(pixels).resize((178, 218), Image.BICUBIC).save(images / file, quality=95)
        if i in truncated:
            data = (images / file).read_bytes()
            (images / file).write_bytes(data[: len(data) // 2])
        if i in missing:
            (images / file).unlink()
        row = attribute_row(i)
        # CelebA pads each value to width 2 and separates with a space: " 1" after a space reads as two.
        values = " ".join(f"{v:2d}" for v in (row[:-1] if i in bad_rows else row))
        attr_lines.append(f"{file} {values}")
        split = 1 if i % 5 == 0 else 2 if i % 7 == 0 else 0
        partition_lines.append(f"{file} {split}")
        if i not in truncated + bad_rows + missing:
            expected[file] = {"split": ("train", "valid", "test")[split],
                              "attributes": dict(zip(CELEBA_40, [int(v == 1) for v in row]))}
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(CELEBA_40)}\n" + "\n".join(attr_lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition_lines) + "\n")
    return expected
