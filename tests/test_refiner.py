"""The swap refiner: its network, its self-supervised pairs, train-refiner, its folder, render --refiner."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from retarget.config import FaceConfig, RefinerConfig
from retarget.dataset.faceindex import face_index
from retarget.dataset.manifest import Dataset, FrameRecord, write_manifest
from retarget.errors import RetargetError
from retarget.faces.align import template_points
from retarget.faces.retrieval import FaceIndex
from retarget.faces.selfpairs import nearest_other, self_pairs
from retarget.nn.refiner import FaceRefiner
from retarget.run.info import DataInfo

SIZE = 32
MARGIN = 0.2


def _face(mouth: float, size: int = SIZE) -> np.ndarray:
    p = template_points(size, MARGIN).copy()
    p[[65, 66, 67, 55, 56, 57, 58, 59], 1] += mouth * size * 0.2  # the lower lip drops
    return p


def _picture(points: np.ndarray, size: int = SIZE, stripes: bool = True, light: int = 0) -> np.ndarray:
    """Skin (brighter by ``light``) with a dark mouth and eyes, and (``stripes``) a fine stripe texture."""
    img = np.full((size, size, 3), (120 + light, 80 + light, 60 + light), np.uint8)
    if stripes:
        img[np.arange(size) % 4 < 2, :, 1] = 50 + light
    cv2.fillConvexPoly(img, np.round(points[60:68]).astype(np.int32), (40, 10, 10))
    for eye in (points[36:42], points[42:48]):
        cv2.fillConvexPoly(img, np.round(eye).astype(np.int32), (20, 20, 60))
    return img


def _dataset(root, openings, size: int = SIZE, segments=None) -> None:
    (root / "frames").mkdir(parents=True)
    frames = []
    for i, m in enumerate(openings):
        crop_pts = _face(m, size)
        matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the crop is the frame
        # the light changes with the mouth (as a head's shading changes with its pose): what a warp carries
        # over wrongly from another frame, and what the refiner can learn from the face's shape
        picture = _picture(crop_pts, size, stripes=False, light=int(round(200 * m)))
        cv2.imwrite(str(root / "frames" / f"{i:06d}.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        seg = 0 if segments is None else segments[i]
        frames.append(FrameRecord(f"frames/{i:06d}.png", seg, 0, i, i / 25, matrix, crop_pts.astype(np.float32)))
    write_manifest(Dataset(root, size, "face", FaceConfig(margin=MARGIN), frames, [], "png", {}))


def _index(openings, segments=None, size: int = SIZE) -> FaceIndex:
    return FaceIndex(
        root=None,  # type: ignore[arg-type]
        files=[None] * len(openings),  # type: ignore[list-item]
        points=np.stack([_face(m, size) for m in openings]),
        segments=np.array(segments or [0] * len(openings)),
        size=size,
        face=FaceConfig(margin=MARGIN),
    )


def test_an_untrained_refiner_changes_nothing_and_keeps_the_shape():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    for factor in (1, 2, 4):
        for smooth in (False, True):
            net = FaceRefiner(factor, width=8, blocks=2, smooth=smooth)
            assert torch.equal(net(x), x)
    with pytest.raises(ValueError, match="multiples of 4"):
        FaceRefiner(4, 8, 1)(torch.zeros(1, 3, 18, 16))


def test_the_input_of_a_frame_is_never_its_own_neighbourhood():
    # frame 2 and 3 share frame 0's expression; frame 1 is close in time to 0
    index = _index([0.0, 0.05, 0.3, 0.0, 0.3], segments=[0, 0, 0, 1, 1])
    assert nearest_other(index, 0, exclude=1) == 3  # 1 is within one frame of 0; 3 (another segment) is its twin
    assert nearest_other(index, 0, exclude=0) == 3
    assert nearest_other(index, 3, exclude=5) == 0  # another segment: time does not exclude it
    assert nearest_other(index, 2, exclude=1) == 4
    with pytest.raises(ValueError, match="no other face"):
        nearest_other(_index([0.0, 0.1]), 0, exclude=3)


def test_pairs_warp_the_other_frame_onto_the_frame(monkeypatch):
    index = _index([0.0, 0.1, 0.25, 0.5, 0.9, 0.05], size=64)
    pictures = [_picture(p, 64, stripes=False) for p in index.points]
    monkeypatch.setattr(index, "image", lambda k: pictures[k])
    pairs = self_pairs(index, np.array([3, 0]), exclude=0)
    assert pairs.inputs.shape == (2, 64, 64, 3) and pairs.masks.dtype == np.uint8
    assert list(pairs.picks) == [2, 5]  # the nearest other mouth opening
    mouth = np.zeros((64, 64), np.uint8)
    cv2.fillConvexPoly(mouth, np.round(index.points[3][48:60]).astype(np.int32), 1)
    near = cv2.dilate(mouth, np.ones((5, 5), np.uint8)).astype(bool)
    err = lambda a, b: np.abs(a.astype(int) - b.astype(int))[near].mean()  # noqa: E731
    # the narrower mouth of frame 2 is moved onto frame 3's lips: nearer frame 3 than frame 2 itself was
    assert err(pairs.inputs[0], pairs.targets[0]) < 0.5 * err(pictures[2], pictures[3])
    assert np.array_equal(pairs.targets[1], pictures[0])
    assert (pairs.masks[0] > 0).mean() > 0.2 and pairs.masks[0, 0, 0] == 0  # the face, not the corners


def _train(tmp_path, **kw):
    from retarget.train.refiner import train_refiner

    torch.set_num_threads(1)
    _dataset(tmp_path / "b", list(np.random.default_rng(0).uniform(0.0, 0.6, 24)))
    cfg = dict(data=str(tmp_path / "b"), out=str(tmp_path / "ref"), exclude=2, width=16, blocks=2, steps=300)
    cfg.update(patch=SIZE, batch_size=4, lr=2e-3, time_limit=None, holdout=0.2, device="cpu", amp="off")
    cfg.update(kw)
    return train_refiner(RefinerConfig(**cfg))


def _darker(monkeypatch) -> None:
    """Every warped input comes out 30% darker than its frame: a correction a refiner must learn."""
    import retarget.train.refiner as trainer

    real = trainer.self_pairs

    def darker(index, frames, exclude):
        pairs = real(index, frames, exclude)
        pairs.inputs = (pairs.targets.astype(np.float32) * 0.7).astype(np.uint8)
        return pairs

    monkeypatch.setattr(trainer, "self_pairs", darker)


def test_training_learns_the_correction_and_writes_a_folder_that_loads(tmp_path, monkeypatch):
    from retarget.run.refiner import load_refiner
    from retarget.train.refiner import score, split_frames

    _darker(monkeypatch)
    res = _train(tmp_path)
    assert res.steps == 300 and (tmp_path / "ref" / "refiner.safetensors").is_file()
    assert res.psnr > res.psnr_warp + 6.0  # on held-out faces, inside the mask
    ref = load_refiner(tmp_path / "ref")
    assert ref.steps == 300 and ref.data.size == SIZE and ref.config.width == 16 and ref.config.smooth
    assert ref.scores["psnr"] == pytest.approx(res.psnr)
    index = face_index(str(tmp_path / "b"))
    train_at, held_at = split_frames(index, ref.config)
    assert list(held_at) == [19, 20, 21, 22, 23] and len(train_at) == 19  # the last 20% never trained on
    import retarget.train.refiner as trainer

    got, warp = score(ref.net, trainer.self_pairs(index, held_at, 2), torch.device("cpu"))
    assert got == pytest.approx(res.psnr, abs=0.05) and warp == pytest.approx(res.psnr_warp, abs=1e-6)


def test_a_smooth_refiner_leaves_fine_detail_alone():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    detail = lambda t: (t - torch.nn.functional.avg_pool2d(t, 3, 1, 1))[..., 4:-4, 4:-4].abs().mean()  # noqa: E731
    share = {}
    for smooth in (True, False):
        torch.manual_seed(0)
        net = FaceRefiner(4, width=8, blocks=1, smooth=smooth)
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.2)
        with torch.no_grad():
            change = net(x) - x
        assert change.abs().mean() > 0.05  # it does change the picture
        share[smooth] = float(detail(change) / change.abs().mean())  # how much of the change is fine detail
    assert share[True] < 0.3 * share[False]


def test_train_refiner_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path):
    from retarget.train.refiner import train_refiner

    _dataset(tmp_path / "b", [0.0, 0.1, 0.2])
    cases = [
        (dict(data=str(tmp_path / "missing")), "missing"),
        (dict(data=str(tmp_path / "b"), exclude=5), "no other face"),
        (dict(data=str(tmp_path / "b"), factor=3), "do not divide by --factor 3"),
        (dict(data=str(tmp_path / "b"), out=str(tmp_path / "b")), "input"),
        (dict(data=str(tmp_path / "b"), max_frames=2), r"^--max-frames 2: train-refiner needs at least 3 faces$"),
    ]
    for extra, message in cases:
        cfg = RefinerConfig(**{"out": str(tmp_path / "ref"), **extra})
        with pytest.raises(RetargetError, match=message) as err:
            train_refiner(cfg)
        assert "\n" not in str(err.value) and not (tmp_path / "ref").exists()


def test_a_refiner_folder_is_whole_or_absent_and_checked_on_reading(tmp_path, monkeypatch):
    import retarget.run.netfolder as store
    from retarget.run.refiner import load_refiner, save_refiner

    net, cfg = FaceRefiner(4, 8, 1), RefinerConfig(data="d", width=8, blocks=1)
    data = DataInfo(align="face", size=SIZE, face=FaceConfig(margin=MARGIN))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save_file", broken)
    with pytest.raises(OSError):
        save_refiner(tmp_path / "r", net, cfg, data, 3, {})
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    save_refiner(tmp_path / "r", net, cfg, data, 3, {"psnr": 30.0, "psnr_warp": 29.0})
    assert load_refiner(tmp_path / "r").steps == 3
    from retarget.run.enhancer import load_enhancer

    with pytest.raises(RetargetError, match="not an enhancer folder"):
        load_enhancer(tmp_path / "r")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "refiner.safetensors").write_bytes(b"junk")
    for path, message in ((tmp_path / "bad", "not a readable"), (tmp_path / "none", "refiner not found")):
        with pytest.raises(RetargetError, match=message):
            load_refiner(path)


def test_swap_items_refine_the_swapped_faces_before_the_mouth_and_steady_the_points(monkeypatch):
    from types import SimpleNamespace

    from retarget.faces.retrieval import FaceSwap
    from retarget.faces.steady import SteadyLandmarks
    from retarget.render.swap import swap_items

    index = _index([0.0, 0.2, 0.4], size=64)
    pictures = [_picture(p, 64, stripes=False) for p in index.points]
    monkeypatch.setattr(index, "image", lambda k: pictures[k])
    seen = []

    def refine(crops):
        seen.append(len(crops))
        return [np.clip(c.astype(int) + 40, 0, 255).astype(np.uint8) for c in crops]

    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float32)

    def item(t, link=None):
        source = _face(0.3, 64) + [0.0, 0.5 * t]  # the face moves down half a pixel per frame
        crop = _picture(source, 64, stripes=False)
        return SimpleNamespace(net_input=crop, landmarks=source, matrix=identity, track=0, link=link, result=None)

    plain = swap_items([item(0), item(1)], FaceSwap(index), refine=refine)
    assert seen == [2]  # one call for the whole batch
    assert all(i.result.mean() > 30 + pictures[0].mean() for i in plain)  # the refiner's output is pasted
    # the mouth of the source goes in after the refiner: its interior is the source's own, not brightened
    mouthed = swap_items([item(0)], FaceSwap(index), mouth="source", refine=refine)[0]
    inner = np.zeros((64, 64), np.uint8)
    cv2.fillConvexPoly(inner, np.round(_face(0.3, 64)[60:68]).astype(np.int32), 1)
    inner = cv2.erode(inner, np.ones((3, 3), np.uint8)).astype(bool)
    assert mouthed.result[inner].mean() < plain[0].result[inner].mean() - 20
    # with the flow (half a pixel down, trusted), jittery detections are pulled onto the motion
    link = SimpleNamespace(map_x=xs, map_y=ys - 0.5, trust=np.ones((64, 64), np.float32))
    steady = SteadyLandmarks(1.0)
    first, second = item(0), item(1, link)
    second.landmarks = second.landmarks + 2.0  # the detector jumps by 2 px
    followed = []

    class Recording(FaceSwap):
        def __call__(self, points):
            followed.append(np.asarray(points).copy())
            return super().__call__(points)

    swap_items([first, second], Recording(index), steady=steady)
    assert np.allclose(followed[1], _face(0.3, 64) + [0.0, 0.5], atol=0.05)  # the flow's, not the jump
