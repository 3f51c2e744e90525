"""Whole-frame render (issue 17) and the render stages on arrays (issue 21).

The source, translate, compose and sink stages are tested on arrays without encoding a
video; then whole 16:9 renders, the padding's alignment, tiles, detail upscaling, and that
square runs from before render exactly as before.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from helpers import audio_codecs, make_video, read_code, read_video_pts, stream_durations
from retarget.config import ExtractConfig, RenderConfig, TrainConfig, model_preset
from retarget.geometry import center_crop, full_cut, place_back, square_cut
from retarget.nn.networks import build_generator
from retarget.render import Translator, render, translate_video
from retarget.render.compose import Composer
from retarget.render.sink import Sink
from retarget.render.source import CutAligner, Source, batches
from retarget.render.translate import FitTranslate, edge_weights, pad_reflect, tile_starts, translate_items
from retarget.render.upscale import place_back_detail
from retarget.run import DataInfo
from retarget.run.checkpoint import save_weights
from retarget.video.reader import Frame

SIZE = 32


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _run(folder: Path, frame: str | None, scale: int = 0) -> Path:
    """A tiny untrained run; A's data recorded as ``frame`` (None: a run from before frame modes)."""
    folder.mkdir(parents=True)
    cfg = model_preset("tiny", size=SIZE)
    torch.manual_seed(0)
    nets = {"G_AB": build_generator(cfg), "G_BA": build_generator(cfg)}
    a = {"align": "none", "size": SIZE, "face": None, "name": "a"}
    if frame is not None:
        a.update(frame=frame, scale=scale)
    save_weights(folder / "weights.safetensors", nets, cfg, step=0, data={"A": a, "B": a})
    return folder


def _render(src: Path, out: Path, run: Path, **kw):
    return render(RenderConfig(input=str(src), output=str(out), model=str(run), device="cpu", batch_size=4, **kw))


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)


class Identity4(torch.nn.Module):
    """Identity through two 2x down-samplings and two 2x up-samplings, like the ResNet
    generator: it refuses sides that are not multiples of 4 and moves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.down = torch.nn.Sequential(torch.nn.PixelUnshuffle(2), torch.nn.PixelUnshuffle(2))
        self.up = torch.nn.Sequential(torch.nn.PixelShuffle(2), torch.nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def _checkerboard(h: int, w: int, cell: int = 6) -> np.ndarray:
    """Grey cells (chroma subsampling leaves them alone) on a slight horizontal ramp."""
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2) * 160 + 40 + xx * 30 // max(w - 1, 1)
    return np.ascontiguousarray(np.repeat(board[..., None], 3, axis=2).astype(np.uint8))


# -- the stages on arrays -----------------------------------------------------------------


def test_source_compose_and_sink_on_arrays():
    h, w = 45, 80
    images = [_texture(h, w, seed=i) for i in range(5)]
    frames = [Frame(i, 100 * i, i / 25, im) for i, im in enumerate(images)]
    cut = full_cut(w, h, 18)
    assert cut.size == (32, 18) and cut.region == (0, 0, w, h)
    items = list(Source(CutAligner(cut)).items(frames))
    assert [it.pts for it in items] == [0, 100, 200, 300, 400]
    assert items[2].net_input.shape == (18, 32, 3) and items[2].link is None
    np.testing.assert_array_equal(items[2].net_input, cut.apply(images[2]))
    np.testing.assert_allclose(items[2].matrix, cut.matrix)
    # translate stage: items in batches, sizes that are no multiple of 4 padded and cropped back
    seen = []

    def invert(pictures):
        seen.extend(p.shape for p in pictures)
        return [255 - p for p in pictures]

    fit = FitTranslate(invert)
    done = [translate_items(b, fit) for b in batches(items, 2)]
    assert [len(b) for b in done] == [2, 2, 1] and set(seen) == {(20, 32, 3)}
    np.testing.assert_array_equal(items[4].result, 255 - items[4].net_input)
    # compose: the whole frame comes back at its size; model size is the translation itself
    picture = Composer(cut)(items[1])
    assert picture.shape == (h, w, 3)
    np.testing.assert_array_equal(picture, place_back(images[1], items[1].result, items[1].matrix))
    assert abs(picture.astype(int) + images[1] - 255).mean() < 12  # inverted everywhere, sides too
    assert Composer(cut, output_size="model")(items[1]) is items[1].result
    assert Composer(cut, side_by_side=True)(items[1]).shape == (h, 2 * w, 3)
    # sink: in order, with the timestamps, no video encoded
    written = []
    sink = Sink(lambda pic, pts: written.append((pts, pic.shape)), Composer(cut))
    for b in batches(items, 3):
        sink(b)
    assert written == [(100 * i, (h, w, 3)) for i in range(5)] and sink.frames == 5


def test_the_sinks_finish_sees_each_stabilized_face_before_the_paste():
    import types

    class Steady:
        def blend(self, result, link):
            return result + 1

    def face(lane, value):
        return types.SimpleNamespace(lane=lane, link=None, result=np.full((4, 4, 3), value, np.uint8))

    first, second = face(0, 10), face(1, 20)
    frame = types.SimpleNamespace(pts=0, more=[second], faces=lambda: [first, second])
    frame.result, frame.lane, frame.link = first.result, 0, None
    finished, written = [], []

    def finish(f):
        finished.append(int(f.result[0, 0, 0]))
        f.result = f.result * 2

    def compose(item):
        return np.concatenate([f.result for f in item.faces()])

    Sink(lambda pic, pts: written.append(pic), compose, Steady(), finish=finish)([frame])
    assert finished == [11, 21]  # stabilized first, then finished, each face of the frame
    assert int(written[0][0, 0, 0]) == 22 and int(written[0][4, 0, 0]) == 42  # the paste sees the finished faces


def test_source_resets_the_stabilizer_at_a_cut():
    from retarget.render.stabilize import Stabilizer

    tex = _texture(36, 64, 1).astype(np.float32)
    a = np.clip(tex * [0.3, 0.4, 1.0], 0, 255).astype(np.uint8)  # a dark bluish shot, then a reddish one
    b = np.clip(tex * [1.6, 1.2, 0.4], 0, 255).astype(np.uint8)
    frames = [Frame(i, i, i / 25, a if i < 3 else b) for i in range(6)]
    cut = full_cut(64, 36, 36)
    items = list(Source(CutAligner(cut), stabilizer=Stabilizer(1.0)).items(frames))
    assert [it.link is None for it in items] == [True, False, False, True, False, False]


# -- padding, tiles, detail -----------------------------------------------------------------


def test_padding_brings_a_checkerboard_back_aligned():
    net = Identity4().eval()
    board = _checkerboard(37, 53)
    with pytest.raises(RuntimeError):
        Translator(net)([board])  # the network needs multiples of 4
    padded, (top, left) = pad_reflect(board)
    assert padded.shape == (40, 56, 3) and (top, left) == (1, 1)
    # reflected, not repeated: the row above the picture mirrors its second row
    np.testing.assert_array_equal(padded[0], padded[2])
    out = FitTranslate(Translator(net))([board, board[::-1].copy()])
    np.testing.assert_array_equal(out[0], board)
    np.testing.assert_array_equal(out[1], board[::-1])


def test_whole_frame_render_of_a_checkerboard_comes_back_aligned(tmp_path):
    w, h = 96, 54
    board = _checkerboard(h, w)
    src = tmp_path / "board.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264rgb", rate=25)
        s.width, s.height, s.pix_fmt, s.options = w, h, "rgb24", {"qp": "0"}
        for _ in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(board, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    out = tmp_path / "out.mkv"
    # short side 54 -> 54 (no resampling): the generator sees 96x54, padded to 96x56
    cfg = RenderConfig(input=str(src), output=str(out), frame="full", scale=h, stabilize=0, crf=0)
    summary = translate_video(cfg, Translator(Identity4().eval()), SIZE, quiet=True)
    assert (summary.width, summary.height, summary.frame, summary.scale) == (w, h, "full", h)
    got = _frames(out)[1].astype(int)
    err = np.abs(got - board).mean()
    shifted = min(np.abs(got[1:] - board[:-1]).mean(), np.abs(got[:, 1:] - board[:, :-1]).mean())
    assert err < 3 and shifted > 10 * err  # aligned, and a one-pixel shift would show


class _SmallConv(torch.nn.Module):
    """A real conv net with a stride-2 level whose receptive field is a few pixels wide."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
            torch.nn.Tanh(),
            torch.nn.Upsample(scale_factor=2, mode="nearest"),
            torch.nn.Conv2d(8, 3, 3, padding=1),
            torch.nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.kernels
def test_tiled_equals_untiled():
    torch.set_num_threads(1)
    translate = Translator(_SmallConv().eval())
    image = _texture(150, 230)
    whole = FitTranslate(translate)([image])[0]
    tiled_fit = FitTranslate(translate, tile=96, batch=3)
    assert tiled_fit.overlap == 24
    calls = []

    def counting(pictures):
        calls.append(len(pictures))
        return translate(pictures)

    tiled = FitTranslate(counting, tile=96, batch=3)([image])[0]
    assert sum(calls) == len(tile_starts(152, 96, 24)) * len(tile_starts(232, 96, 24)) and max(calls) <= 3
    # tiles are other shapes than the whole frame (other kernels, floats off in their last bits), and
    # a weighted mean of them is rounded again: at most 1 uint8 level; seams without the overlap are > 10
    assert np.abs(tiled.astype(int) - whole).max() <= 1
    # the test can fail: tiles pasted side by side without overlap show their edges
    naive = whole.copy()
    for y in range(0, 152, 96):
        for x in range(0, 232, 96):
            part = pad_reflect(image)[0][y : y + 96, x : x + 96]
            naive_tile = translate([np.ascontiguousarray(part)])[0]
            ys, xs = slice(y, min(y + 96, 150)), slice(x, min(x + 96, 230))
            naive[ys, xs] = naive_tile[: ys.stop - ys.start, : xs.stop - xs.start]
    assert np.abs(naive.astype(int) - whole).max() > 10


def test_edge_weights_fade_in_after_a_margin():
    w = edge_weights(32, True, True, 16)
    assert (w[:4] == 0).all() and (w[-4:] == 0).all() and (w[16:16] == 1).all()
    assert (np.diff(w[:16]) >= 0).all() and w[15] > 0.95
    np.testing.assert_array_equal(edge_weights(32, False, False, 16), np.ones(32))


def test_detail_upscale_puts_the_source_detail_back():
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.integers(0, 256, (120, 200), dtype=np.uint8), (0, 0), 0.8).astype(np.float32)
    grey = (grey - grey.mean()) / grey.std() * 40 + 128
    high = np.clip(grey[..., None] * [1.1, 0.9, 0.7], 0, 255).astype(np.uint8)  # a tinted texture
    cut = full_cut(200, 120, 30)
    small = cut.apply(high)
    # a "translation" that changes the colours and keeps the structure; the truth is the
    # same change at the source's resolution
    truth, translation = 255 - high[..., ::-1], 255 - small[..., ::-1]

    def err(x):
        return np.abs(x.astype(int) - truth).mean()

    bilinear = place_back(high, translation, cut.matrix)
    detail = place_back_detail(high, translation, small, cut.matrix)
    assert err(detail) < 0.3 * err(bilinear)
    flat = np.full_like(small, 90)
    np.testing.assert_array_equal(place_back_detail(high, flat, small, cut.matrix), place_back(high, flat, cut.matrix))
    # outside a --crop region the frame keeps the input
    region = full_cut(200, 120, 20, crop=(40, 30, 100, 60))
    out = place_back_detail(high, 255 - region.apply(high), region.apply(high), region.matrix)
    np.testing.assert_array_equal(out[:30], high[:30])
    np.testing.assert_array_equal(out[:, :40], high[:, :40])


# -- whole renders --------------------------------------------------------------------------


def test_16x9_render_keeps_size_frames_timestamps_and_audio(tmp_path):
    run = _run(tmp_path / "run", "full", scale=36)
    src = make_video(tmp_path / "wide.mp4", frames=10, size=(96, 54), audio="aac")
    out = tmp_path / "out.mp4"
    summary = _render(src, out, run, crf=0)
    assert (summary.frames, summary.width, summary.height) == (10, 96, 54)
    assert (summary.frame, summary.scale, summary.audio) == ("full", 36, ["copy"])
    assert read_video_pts(out)[0] == pytest.approx(read_video_pts(src)[0], abs=1e-4)
    d = stream_durations(out)
    assert audio_codecs(out) == ["aac"] and abs(d["audio1"] - d["video"]) <= 1 / 25
    a, b = _frames(src), _frames(out)
    diff = np.abs(a[5].astype(int) - b[5].astype(int)).mean(axis=2)
    # the whole frame is translated: the sides too, not just the centre square
    assert diff[:, :8].mean() > 20 and diff[:, -8:].mean() > 20 and diff[:, 40:56].mean() > 20
    # the generator's own size, tiles, detail and side by side
    model = _render(src, tmp_path / "m.mp4", run, output_size="model")
    assert (model.width, model.height) == (64, 36) and _frames(tmp_path / "m.mp4")[0].shape == (36, 64, 3)
    other = _render(src, tmp_path / "t.mp4", run, scale=40, tile=32, upscale="detail", side_by_side=True)
    assert (other.width, other.height, other.scale, other.frames) == (192, 54, 40, 10)
    assert [read_code(f[:, :96]) for f in _frames(tmp_path / "t.mp4")] == list(range(10))


@pytest.mark.kernels
def test_square_runs_from_before_render_exactly_as_before(tmp_path, monkeypatch):
    from retarget.run import load_run
    from retarget.video.reader import VideoReader
    from retarget.video.writer import VideoWriter

    run = _run(tmp_path / "old", None)  # no frame, no scale: a run saved before them
    src = make_video(tmp_path / "wide.mp4", frames=6, size=(96, 54))
    written: list[tuple[int, np.ndarray]] = []
    real_write = VideoWriter.write

    def record(self, image, pts=None):
        written.append((pts, image.copy()))
        return real_write(self, image, pts)

    monkeypatch.setattr(VideoWriter, "write", record)
    summary = _render(src, tmp_path / "out.mp4", run, stabilize=0, amp="off")  # float32, as before --amp auto
    assert (summary.frame, summary.scale, summary.frames) == ("square", SIZE, 6)
    # the render of before, by hand: the centre square at the data's size through the
    # generator, placed back (bilinear) where it was cut from; the sides keep the input
    translate = Translator(load_run(str(run), "cpu", names=("G_AB",)).networks["G_AB"])
    with VideoReader(src) as reader:
        frames = list(reader)
    crops = [center_crop(f.image, SIZE) for f in frames]
    # in the render's batches of 4: the same shapes, the same kernels, so the same bytes (exact on purpose)
    translated = translate(crops[:4]) + translate(crops[4:])
    for (pts, picture), frame, res in zip(written, frames, translated, strict=True):
        assert pts == frame.pts
        np.testing.assert_array_equal(picture, place_back(frame.image, res, square_cut(96, 54, SIZE).matrix))
        np.testing.assert_array_equal(picture[:, :21], frame.image[:, :21])
    # --frame full on the old run: the whole frame at size * 1.12 = 36 px
    assert _render(src, tmp_path / "full.mp4", run, frame="full").scale == round(SIZE * 1.12)


def test_run_info_records_frame_and_scale_and_old_runs_load_with_defaults(tmp_path):
    from retarget.dataset.extract import extract
    from retarget.run import load_run
    from retarget.train import train

    old = DataInfo.from_dict({"align": "none", "size": 64})
    assert (old.frame, old.scale) == ("square", 0)
    assert DataInfo.from_dict(DataInfo(frame="full", scale=72).to_dict()) == DataInfo(frame="full", scale=72)
    # a 16:9 dataset of whole frames trains, and the run knows how it saw them
    src = make_video(tmp_path / "wide.mp4", frames=8, size=(64, 36))
    for name in ("a", "b"):
        extract(ExtractConfig(videos=(str(src),), output=str(tmp_path / name), size=20, workers=1))
    cfg = TrainConfig(
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        out=str(tmp_path / "run"),
        preset="tiny",
        model=model_preset("tiny", size=16),
        steps=2,
        checkpoint_every=100,
        preview_every=2,
        preview_frames=6,
        device="cpu",
    )
    train(cfg)
    info = load_run(str(tmp_path / "run"), "cpu", names=("G_AB",)).data_of("A")
    assert (info.frame, info.scale, info.size) == ("full", round(16 * 1.12), 20)
    # the temporal preview translates the whole frame (18 x 32 at the load scale), as render does
    with av.open(str(tmp_path / "run" / "previews" / "step_0000002.mp4")) as clip:
        stream = clip.streams.video[0]
        assert (stream.width, stream.height) == (32, 18) and stream.frames == 6


def test_wide_scene_example_runs_end_to_end(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "examples" / "wide_scene.py"
    spec = importlib.util.spec_from_file_location("example_wide_scene", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.main(["--out", str(tmp_path), "--steps", "3", "--device", "cpu"]) == 0
    assert "128x72, 30 frames, whole frames at 36 px" in capsys.readouterr().out
    import json

    assert json.loads((tmp_path / "data" / "A" / "manifest.json").read_text())["frame"] == "full"
    assert _frames(tmp_path / "wide_a_as_B.mp4")[0].shape == (72, 128, 3)


def test_a_side_by_side_video_from_two_files_keeps_frames_timing_and_sound(tmp_path):
    """The app's side-by-side: the source beside its render, made from the files without the generator."""
    from retarget.errors import RetargetError
    from retarget.render.sidebyside import side_by_side_video

    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), audio="aac")
    out = tmp_path / "out.mp4"
    translate_video(RenderConfig(str(src), str(out), crf=0), lambda crops: [255 - c for c in crops], SIZE, quiet=True)
    side = tmp_path / "side.mp4"
    assert side_by_side_video(src, out, side) == 12
    assert read_video_pts(side)[0] == pytest.approx(read_video_pts(out)[0], abs=1e-4)
    assert audio_codecs(side) == ["aac"]
    with av.open(str(side)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(src)) as c:
        original = next(c.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(out)) as c:
        rendered = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape == (48, 128, 3) and np.abs(rendered.astype(int) - original).mean() > 30
    # left: the source, right: the render (H.264 once more at crf 18: a few levels, far from a mismatch)
    assert np.abs(first[:, :64].astype(int) - original).mean() < 4
    assert np.abs(first[:, 64:].astype(int) - rendered).mean() < 4
    with pytest.raises(RetargetError, match="not a render of it"):
        side_by_side_video(make_video(tmp_path / "short.mp4", frames=5, size=(64, 48)), out, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()
