"""Preview grids and loss curves of retarget.train.preview."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from retarget.train.preview import preview_rows, save_grid, save_loss_curve, to_uint8


def test_to_uint8_maps_minus_one_to_one_onto_0_255():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 4).expand(3, 1, 4)
    img = to_uint8(x)
    assert img.shape == (1, 4, 3) and img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 128, 255, 255]  # clamped beyond 1


def test_preview_rows_one_row_per_direction_in_a_fixed_order():
    def const(v):
        return torch.full((2, 3, 4, 4), v)

    visuals = {"A/rec": const(0.5), "A/real_0": const(-1.0), "A/fake_0": const(0.0), "B/real_0": const(1.0)}
    rows = preview_rows(visuals, sample=1)
    assert len(rows) == 2 and len(rows[0]) == 3 and len(rows[1]) == 1
    assert [int(im[0, 0, 0]) for im in rows[0]] == [0, 128, 191]  # real, fake, rec


def test_save_grid_tiles_rows_with_a_white_border(tmp_path):
    red, blue = np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    save_grid(tmp_path / "g.png", [[red, blue], [blue]], pad=2)
    grid = cv2.cvtColor(cv2.imread(str(tmp_path / "g.png")), cv2.COLOR_BGR2RGB)
    assert grid.shape == (2 * (4 + 2) + 2, 2 * (6 + 2) + 2, 3)
    assert grid[2, 2].tolist() == [255, 0, 0] and grid[2, 10].tolist() == [0, 0, 255]
    assert grid[8, 2].tolist() == [0, 0, 255] and grid[8, 10].tolist() == [255, 255, 255]  # missing cell: white
    assert grid[0, 0].tolist() == [255, 255, 255]


def test_loss_curve_is_a_png(tmp_path):
    records = [{"step": s, "loss/loss_G": 3.0 / s, "loss/loss_D": 0.5, "temporal/warp_error": 4.0} for s in (1, 2, 3)]
    save_loss_curve(tmp_path / "curve.png", records)
    img = cv2.imread(str(tmp_path / "curve.png"))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 300
