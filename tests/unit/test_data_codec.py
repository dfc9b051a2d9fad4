"""The image codec: one module both the writers and the reader use, so sources never import the stream."""

import numpy as np
import pytest
import torch

from vaegan_dist.data.codec import decode_image_bytes, encode_image


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_lossless_encodings_round_trip(encoding):
    image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    decoded = decode_image_bytes(encode_image(image, encoding), encoding, 12)
    assert decoded.dtype == torch.uint8 and torch.equal(decoded, torch.from_numpy(image).permute(2, 0, 1))


def test_jpeg_is_close_and_unknown_encodings_are_refused():
    image = np.full((16, 16, 3), 100, dtype=np.uint8)
    decoded = decode_image_bytes(encode_image(image, "jpg"), "jpg", None)
    assert decoded.shape == (3, 16, 16) and (decoded.int() - 100).abs().max() <= 2
    with pytest.raises(ValueError, match="'gif' is not one of png, jpg, raw"):
        encode_image(image, "gif")


def test_reconstruction_grids_alternate_rows_of_originals_and_reconstructions():
    from vaegan_dist.data.codec import interleave_rows

    originals, reconstructions = torch.arange(10.0), -torch.arange(10.0)  # 10 "images", rows of 4
    grid = interleave_rows(originals, reconstructions, row=4)
    assert grid.tolist() == [0, 1, 2, 3, -0, -1, -2, -3, 4, 5, 6, 7, -4, -5, -6, -7, 8, 9, -8, -9]
