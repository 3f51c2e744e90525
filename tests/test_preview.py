"""Preview grids and loss curves of retarget.train.preview."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from retarget.train.preview import grid_image, preview_rows, save_grid, save_loss_curve, to_uint8


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
    assert len(rows) == 2 and len(rows[0].images) == 3 and len(rows[1].images) == 1
    assert [int(im[0, 0, 0]) for im in rows[0].images] == [0, 128, 191]  # real, fake, rec
    assert rows[0].keys == ["A/real_0", "A/fake_0", "A/rec"] and [r.label for r in rows] == ["A->B", "B->A"]
    assert rows[0].titles == ["source", "translation", "reconstruction"]  # one frame (CycleGAN): no times


def _recycle_visuals(size=16):
    from retarget.config import LossConfig, model_preset
    from retarget.nn.networks import build_networks
    from retarget.nn.objectives import make_objective

    cfg = model_preset("tiny", size=size)
    torch.manual_seed(0)
    objective = make_objective(cfg, LossConfig(), build_networks(cfg))
    batch = {d: torch.rand(1, 3, 3, size, size) * 2 - 1 for d in "AB"}
    return objective.visuals(batch)


def test_every_column_of_a_recycle_grid_is_titled_by_its_key():
    visuals = _recycle_visuals()
    rows = preview_rows(visuals)
    assert [r.label for r in rows] == ["A->B", "B->A"]
    assert sorted(k for r in rows for k in r.keys) == sorted(visuals)  # every visual shown once
    titles = dict(zip(rows[0].keys, rows[0].titles))
    assert titles == {
        "A/real_0": "source t",
        "A/real_1": "source t+1",
        "A/real_2": "source t+2",
        "A/fake_0": "translation t",
        "A/fake_1": "translation t+1",
        "A/fake_2": "translation t+2",
        "A/pred": "prediction t+2",
        "A/recycled": "recycled t+2",
        "A/rec": "reconstruction t",
        "A/next": "own prediction t+2",
    }
    assert rows[1].titles == rows[0].titles and all(k.startswith("B/") for k in rows[1].keys)
    for row in rows:  # each picture is its key's
        for key, img in zip(row.keys, row.images):
            assert np.array_equal(img, to_uint8(visuals[key][0]))


@pytest.mark.parametrize("size", [16, 64, 128])
def test_the_grid_has_a_header_band_with_text_above_every_column(size):
    rows = preview_rows(_recycle_visuals(size))
    grid = grid_image(rows, pad=2)
    plain = grid_image([r.images for r in rows], pad=2)
    assert grid.shape[0] > plain.shape[0] and grid.shape[1] > plain.shape[1]  # header bands and a left margin
    band = (grid.shape[0] - 2) // 2 - size - 2
    margin = grid.shape[1] - plain.shape[1]
    assert band >= 16 and margin >= 20
    for i in range(2):
        top = 2 + i * (band + size + 2)
        for j in range(10):
            x = margin + 2 + j * (size + 2)
            header = grid[top : top + band, x : x + size]
            assert (header < 128).any(), (i, j)  # ink: the column's title
            assert np.array_equal(grid[top + band : top + band + size, x : x + size], rows[i].images[j])
        label = grid[top + band : top + band + size, :margin]
        assert (label < 128).any()  # the row's direction
    # different titles draw differently: the header is text, not a fixed stripe
    first = grid[2 : 2 + band, margin + 2 : margin + 2 + size]
    last = grid[2 : 2 + band, margin + 2 + 9 * (size + 2) : margin + 2 + 9 * (size + 2) + size]
    assert not np.array_equal(first, last)


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
