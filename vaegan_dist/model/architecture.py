"""Layer sizes of the three networks per image size.

64x64 is the paper's CelebA network; 32x32 is the released code's ``img32x32``; 128x128 adds one
stride-2 stage in front of the 64x64 network. Every network reaches ``bottom_side`` x ``bottom_side``
after its stride-2 convolutions; Dis_l is the discriminator convolution whose output is 8x8, taken
before its batch normalisation (the 4th conv at 64 px, the 3rd at 32 px, as in the paper and code).
``dis_l_side`` moves Dis_l to the stride-2 convolution of another output side: 16 at 64 px is the 3rd conv,
4 image pixels per feature as the paper's 8x8 is at 32 px (the 64 px lever of bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

KERNEL = 5  # every convolution is 5x5
BN_MOMENTUM = 0.1  # torch convention; DeepPy's 0.9 is the weight of the old running value
CONV_BN_EPS = 1e-6
DIS_L_SIDE = 8  # spatial side of the paper's Dis_l at every image size


@dataclass(frozen=True)
class Architecture:
    image_size: int
    encoder_channels: tuple[int, ...]  # stride-2 convs
    decoder_channels: tuple[int, ...]  # stride-2 transposed convs, after the FC to (decoder_start, side, side)
    decoder_start: int
    discriminator_stem: int  # the stride-1 conv without BN
    discriminator_channels: tuple[int, ...]  # stride-2 convs
    dis_l_block: int  # index into discriminator_channels of the conv whose output is Dis_l
    bottom_side: int  # spatial side after all stride-2 stages

    @property
    def dis_l_side(self) -> int:
        return self.image_size >> (self.dis_l_block + 1)

    @property
    def dis_l_channels(self) -> int:
        return self.discriminator_channels[self.dis_l_block]

    @property
    def dis_l_features(self) -> int:
        """Number of values in Dis_l per image (16,384 at 64 px with the paper's 8x8)."""
        return self.dis_l_channels * self.dis_l_side**2


_TABLE: dict[int, dict] = {
    32: dict(encoder_channels=(64, 128, 256), decoder_start=256, decoder_channels=(192, 128, 32),
             discriminator_stem=32, discriminator_channels=(128, 192, 256), bottom_side=4),
    64: dict(encoder_channels=(64, 128, 256), decoder_start=256, decoder_channels=(256, 128, 32),
             discriminator_stem=32, discriminator_channels=(128, 256, 256), bottom_side=8),
    128: dict(encoder_channels=(64, 128, 256, 256), decoder_start=256, decoder_channels=(256, 256, 128, 32),
              discriminator_stem=32, discriminator_channels=(128, 256, 256, 256), bottom_side=8),
}



def _scale(channels: tuple[int, ...], width: float) -> tuple[int, ...]:
    return tuple(max(1, round(c * width)) for c in channels)


def architecture(image_size: int, width: float = 1.0, dis_l_side: int = DIS_L_SIDE) -> Architecture:
    """The layer sizes for ``image_size``, every channel count multiplied by ``width``, Dis_l at ``dis_l_side``."""
    if image_size not in _TABLE:
        raise ValueError(f"no architecture for image_size={image_size}; supported: {sorted(_TABLE)}")
    sides = tuple(image_size >> (i + 1) for i in range(len(_TABLE[image_size]["discriminator_channels"])))
    if dis_l_side not in sides:
        raise ValueError(f"no discriminator convolution of side {dis_l_side} at image_size={image_size}; "
                         f"choose one of {', '.join(map(str, sides))}")
    t = _TABLE[image_size]
    return Architecture(
        image_size=image_size,
        encoder_channels=_scale(t["encoder_channels"], width),
        decoder_channels=_scale(t["decoder_channels"], width),
        decoder_start=_scale((t["decoder_start"],), width)[0],
        discriminator_stem=_scale((t["discriminator_stem"],), width)[0],
        discriminator_channels=_scale(t["discriminator_channels"], width),
        dis_l_block=sides.index(dis_l_side),
        bottom_side=t["bottom_side"],
    )
