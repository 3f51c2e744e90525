"""Small synthetic videos for tests, written with PyAV (no ffmpeg binary, no downloads).

``make_video`` draws moving shapes on a background whose colour changes at each scene
cut, stamps the frame index as an 8-bit code in a band at the bottom (``read_code``
gets it back, so a test can tell which source frame a decoder returned) and can add
an audio sine track, irregular timestamps (VFR) and rotation metadata.

``write_frames`` writes a folder of traceable images (a plain training dataset), and
``read_video_pts`` / ``stream_durations`` / ``audio_codecs`` inspect a written file.
Other test modules import them: keep the signatures stable.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Sequence, Union

import av
import cv2
import numpy as np

#: Encoder and pixel format for each ``codec`` name accepted by :func:`make_video`.
VIDEO_CODECS: dict[str, tuple[str, str]] = {
    "h264": ("libx264", "yuv420p"),
    "mpeg4": ("mpeg4", "yuv420p"),
    "msmpeg4": ("msmpeg4", "yuv420p"),
    "cinepak": ("cinepak", "rgb24"),
    "vp9": ("libvpx-vp9", "yuv420p"),
    "mjpeg": ("mjpeg", "yuvj420p"),
    "ffv1": ("ffv1", "yuv444p"),  # lossless; any size, odd ones included
}

#: Audio encoder used for ``audio=True`` in each container.
DEFAULT_AUDIO = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".avi": "mp3", ".webm": "opus"}
AUDIO_CODECS = {"aac": "aac", "mp3": "libmp3lame", "ac3": "ac3", "opus": "libopus", "pcm": "pcm_s16le"}

CODE_BITS = 8  # frame index stamped modulo 256


def frame_times(frames: int, fps: float, vfr: bool = False) -> list[float]:
    """Presentation times (s) of the frames :func:`make_video` writes.

    With ``vfr`` the frame durations cycle through 0.5, 1.0 and 1.5 frame periods, so
    the average rate stays ``fps`` but a decoder that assumes a constant rate drifts.
    """
    if not vfr:
        return [i / fps for i in range(frames)]
    steps = (0.5, 1.0, 1.5)
    times, t = [], 0.0
    for i in range(frames):
        times.append(t)
        t += steps[i % 3] / fps
    return times


def synth_frame(index: int, size: tuple[int, int], scene: int = 0, frames: int = 100) -> np.ndarray:
    """The RGB picture (H x W x 3 uint8) :func:`make_video` encodes as frame ``index``.

    ``scene`` picks the background colour and shape colours; ``frames`` sets the speed
    so the shapes cross the picture once over the video.
    """
    w, h = size
    hue = (scene * 67 + 10) % 180
    bg = np.zeros((h, w, 3), np.uint8)
    bg[..., 0] = hue
    bg[..., 1] = 160
    bg[..., 2] = np.linspace(90, 200, w, dtype=np.float32)[None, :].astype(np.uint8)
    img = cv2.cvtColor(bg, cv2.COLOR_HSV2RGB)
    band = max(4, h // 8)
    body = h - band
    phase = index / max(frames - 1, 1)
    side = max(4, min(w, body) // 4)
    x = int(phase * (w - side))
    y = int(body / 2 - side / 2 + (body / 4) * math.sin(2 * math.pi * phase))
    c1 = tuple(int(v) for v in cv2.cvtColor(np.uint8([[[(hue + 90) % 180, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0])
    cv2.rectangle(img, (x, max(y, 0)), (x + side, min(y + side, body - 1)), c1, -1)
    cx = int(w - 1 - phase * (w - 1))
    cv2.circle(img, (cx, body // 3), max(2, side // 2), (250, 250, 250), -1)
    # An orientation marker: a dark block in the top-left corner only.
    m = max(2, min(w, h) // 8)
    img[:m, :m] = (20, 20, 20)
    # The frame index as black/white blocks across the bottom band.
    code = index % (1 << CODE_BITS)
    for bit in range(CODE_BITS):
        x0, x1 = bit * w // CODE_BITS, (bit + 1) * w // CODE_BITS
        img[h - band :, x0:x1] = 255 if (code >> (CODE_BITS - 1 - bit)) & 1 else 0
    return img


def read_code(image: np.ndarray) -> int:
    """The frame index (mod 256) stamped by :func:`synth_frame`, read from a decoded picture.

    ``image`` must be upright (rotation already undone) and at the written size.
    """
    h, w = image.shape[:2]
    band = max(4, h // 8)
    gray = image[h - band + 1 : h - 1].mean(axis=2)
    code = 0
    for bit in range(CODE_BITS):
        x0, x1 = bit * w // CODE_BITS, (bit + 1) * w // CODE_BITS
        inner = gray[:, x0 + 1 : max(x1 - 1, x0 + 2)]
        code = (code << 1) | int(inner.mean() > 127)
    return code


def _scene_of(index: int, cuts: Sequence[int]) -> int:
    return sum(1 for c in cuts if index >= c)


def make_video(
    path: Union[str, Path],
    *,
    frames: int = 24,
    size: tuple[int, int] = (64, 48),
    fps: float = 25.0,
    codec: str | None = None,
    audio: Union[bool, str] = False,
    vfr: bool = False,
    scene_cuts: Sequence[int] = (),
    rotation: int | None = None,
    audio_seconds: float | None = None,
    bitrate: int | None = None,
    gop: int | None = None,
    drop: Sequence[int] = (),
    bframes: int = 0,
    audio_offset: float = 0.0,
) -> Path:
    """Write a small synthetic video with PyAV and return its path.

    Args:
        path: output file; the suffix picks the container (.mp4 .avi .mkv .mov .webm).
        frames: number of video frames.
        size: (width, height) in pixels of the stored (un-rotated) frames; even numbers
            (odd ones with ``codec="ffv1"``).
        fps: frame rate (the average one with ``vfr``).
        codec: one of ``VIDEO_CODECS`` (h264, mpeg4, msmpeg4, cinepak, vp9, mjpeg, ffv1);
            default h264, or vp9 for .webm.
        audio: False for no audio; True for the container's usual codec; or a codec name
            (aac, mp3, ac3, opus, pcm or an encoder name such as pcm_s16le). The track is a
            440 Hz sine for the video's duration.
        vfr: irregular timestamps, see :func:`frame_times`.
        scene_cuts: frame indices where a new scene (new colours) starts.
        rotation: display rotation in degrees counter-clockwise (90, 180, 270) stored as
            a display matrix, as phones do; a decoder that honours it returns pictures
            turned by ``np.rot90(picture, rotation // 90)``.
        audio_seconds: length of the audio track; default the video's duration.
        bitrate: video bitrate in bit/s for encoders that use one; default generous.
        gop: keyframe interval in frames (for seek tests); default the encoder's.
        drop: frame indices left out, leaving a hole in the timestamps (the remaining
            frames keep their times and codes); needs a container with a fine time base
            (mkv, mp4, mov), and ``vfr`` or ``drop`` writes with a 1 ms time base.
        bframes: B-frames between reference frames (h264 only); the decoder then
            reorders, see :func:`restamp_pts_as_dts`.
        audio_offset: seconds between the video's start and the first audio sample.

    Frame ``i`` is :func:`synth_frame` ``(i, size, scene, frames)``, timed by
    :func:`frame_times`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec is None:
        codec = "vp9" if path.suffix.lower() == ".webm" else "h264"
    if codec not in VIDEO_CODECS:
        raise ValueError(f"codec {codec!r} not in {sorted(VIDEO_CODECS)}")
    encoder, pix_fmt = VIDEO_CODECS[codec]
    w, h = size
    times = frame_times(frames, fps, vfr)
    rate = Fraction(fps).limit_denominator(1001)
    time_base = Fraction(1, 1000) if vfr or drop else 1 / rate
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream(encoder, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        if encoder == "libx264":
            vs.options = {"crf": "18", "preset": "ultrafast"}
        elif encoder == "libvpx-vp9":
            vs.options = {"deadline": "realtime", "cpu-used": "8", "crf": "20"}
            vs.bit_rate = bitrate or 2_000_000
        elif encoder in ("mpeg4", "msmpeg4", "mjpeg"):
            vs.bit_rate = bitrate or 4_000_000
            vs.options = {"qmax": "6"} if encoder != "mjpeg" else {}
        x264 = []
        if gop:
            vs.codec_context.gop_size = gop
            x264.append(f"keyint={gop}:min-keyint={gop}:scenecut=0")
        if bframes:
            x264.append(f"bframes={bframes}:b-adapt=0:b-pyramid=none")
        if x264 and encoder == "libx264":
            vs.options = {**vs.options, "x264-params": ":".join(x264)}
        if rotation:
            vs.set_display_rotation(rotation)
        a_stream = None
        if audio:
            name = DEFAULT_AUDIO.get(path.suffix.lower(), "aac") if audio is True else str(audio)
            a_codec = AUDIO_CODECS.get(name, name)
            sr = 48000 if a_codec == "libopus" else 44100
            a_stream = out.add_stream(a_codec, rate=sr)
            a_stream.layout = "mono" if a_codec != "libopus" else "stereo"
        for i, t in enumerate(times):
            if i in drop:
                continue
            img = synth_frame(i, size, _scene_of(i, scene_cuts), frames)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pix_fmt != "rgb24":
                vf = vf.reformat(format=pix_fmt)
            vf.pts = round(t / time_base)
            vf.time_base = time_base
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            seconds = audio_seconds if audio_seconds is not None else frames / fps
            write_sine(out, a_stream, seconds, offset=audio_offset)
    return path


def restamp_pts_as_dts(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """Copy ``src``'s video packets to ``dst`` with each packet's pts set to its dts.

    For a stream with B-frames (``make_video(..., bframes=2)``) this is what some real
    muxers write: the pictures still decode in display order, but their timestamps come
    out in decode order (0, 2, 3, 1, 5, 6, 4... frame periods). dts is shifted to start
    at 0 so no frame gets a negative time. Audio packets are copied unchanged.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        shift = None
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:  # the demuxer's end-of-stream flush packet
                continue
            if packet.stream.type == "video":
                shift = -packet.dts if shift is None else shift
                packet.dts += shift
                packet.pts = packet.dts
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def write_sine(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float, offset: float = 0.0
) -> None:
    """Encode a 440 Hz sine of ``seconds`` into ``stream``, starting ``offset`` s after zero."""
    sr = stream.codec_context.sample_rate
    channels = stream.codec_context.layout.nb_channels
    total = int(round(seconds * sr))
    chunk = 1024
    fmt = stream.codec_context.format.name
    t0 = 0
    while t0 < total:
        n = min(chunk, total - t0)
        t = (np.arange(t0, t0 + n) / sr).astype(np.float32)
        wave = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        if fmt.endswith("p"):  # planar: one row per channel
            data = np.tile(wave[None, :], (channels, 1))
        else:  # packed: channels interleaved in one row
            data = np.repeat(wave, channels)[None, :]
        if fmt.startswith("s16"):
            data = (data * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            data = (data * 2147483647).astype(np.int32)
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=stream.codec_context.layout.name)
        af.sample_rate = sr
        af.pts = t0 + int(round(offset * sr))
        af.time_base = Fraction(1, sr)
        for packet in stream.encode(af):
            out.mux(packet)
        t0 += n
    for packet in stream.encode():
        out.mux(packet)


def write_text_file(path: Union[str, Path], text: str = "this is not a video\n") -> Path:
    """A text file (e.g. named ``x.mp4``) for not-a-video tests."""
    path = Path(path)
    path.write_text(text)
    return path


def make_audio_only(path: Union[str, Path], seconds: float = 0.5, codec: str = "aac") -> Path:
    """A file with a single audio stream and no video (e.g. ``x.m4a`` or ``x.mp4``)."""
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        a_stream = out.add_stream(AUDIO_CODECS.get(codec, codec), rate=44100)
        a_stream.layout = "mono"
        write_sine(out, a_stream, seconds)
    return path


def faststart(src: Union[str, Path], dest: Union[str, Path]) -> Path:
    """The video stream of ``src`` remuxed with its index first (``movflags=faststart``), as web and
    phone videos are: cut short, such a file still says its whole length."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", options={"movflags": "faststart"}) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
    return Path(dest)


def truncate(path: Union[str, Path], fraction: float = 0.6, dest: Union[str, Path, None] = None) -> Path:
    """Keep the first ``fraction`` of a file's bytes (a download cut short); returns the copy."""
    path = Path(path)
    data = path.read_bytes()
    dest = Path(dest) if dest is not None else path.with_name(path.stem + "_truncated" + path.suffix)
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def write_frames(folder: Path, n: int, size: int = 20, start: int = 0) -> Path:
    """Frames whose pixel value encodes their index (R = 10 * i), so samples are traceable."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 2] = 10 * (start + i)  # BGR on disk: channel 2 is red
        img[:, : size // 2, 1] = 200  # a left/right asymmetry to see flips
        cv2.imwrite(str(folder / f"f{start + i}.png"), img)
    return folder


def read_video_pts(path: Path) -> tuple[list[float], Fraction, float]:
    """Decode ``path``: (frame times in seconds, in presentation order), time base, fps."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [float(f.pts * s.time_base) for f in c.decode(s)]
        return sorted(times), s.time_base, float(s.average_rate or 0)


def stream_durations(path: Path) -> dict[str, float]:
    """Seconds covered by the video and each audio stream, from their packets (pts + duration)."""
    out: dict[str, float] = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio"):
                continue
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        for p in c.demux():
            if p.pts is None or p.size == 0:
                continue
            t0 = float(p.pts * p.time_base)
            t1 = t0 + float((p.duration or 0) * p.time_base)
            i = p.stream.index
            first[i] = min(first.get(i, t0), t0)
            last[i] = max(last.get(i, t1), t1)
        for s in c.streams:
            if s.index in last:
                key = s.type if s.type == "video" else f"audio{s.index}"
                out[key] = last[s.index] - first[s.index]
    return out


def audio_codecs(path: Path) -> list[str]:
    """Codec names of the audio streams of ``path``."""
    with av.open(str(path)) as c:
        return [s.codec_context.name for s in c.streams.audio]


def tiny_pair_run(folder: Union[str, Path], size: int = 16, names: tuple[str, str] = ("a", "b"), step: int = 0) -> Path:
    """A tiny untrained pair saved the way training saves it (G_AB and G_BA only), seeded.

    Domain A was extracted as whole frames (centre squares), B as aligned faces, so
    ``a2b`` renders whole frames and ``b2a`` renders faces. ``names``: the datasets' names.
    """
    import torch

    from retarget.config import FaceConfig, model_preset, to_dict
    from retarget.nn.networks import build_generator
    from retarget.run.checkpoint import save_weights

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model_preset("tiny", size=size)
    torch.manual_seed(0)
    nets = {"G_AB": build_generator(cfg), "G_BA": build_generator(cfg)}
    data = {
        "A": {"align": "none", "size": size, "face": None, "name": names[0]},
        "B": {"align": "face", "size": size, "face": to_dict(FaceConfig()), "name": names[1]},
    }
    save_weights(folder / "weights.safetensors", nets, cfg, step=step, data=data)
    return folder


def tiny_train_config(tmp_path: Path, out: Path, **kw):
    """A TrainConfig of two tiny image datasets under ``tmp_path`` (a tiny CycleGAN at 32 px, CPU), ``kw`` set."""
    from retarget.config import TrainConfig, model_preset

    a = write_frames(tmp_path / "faces", 6, size=36)
    b = write_frames(tmp_path / "cats", 6, size=36, start=9)
    base = dict(preset="tiny", pool=0, preview_every=100, preview_frames=0, log_every=1, device="cpu")
    base.update(kw)
    return TrainConfig(str(a), str(b), out=str(out), model=model_preset("tiny", model="cyclegan", size=32), **base)


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (the scripts are not a package), imported without running it."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class FixedFace:
    """An aligned face that is always at the same place: what a made-up aligner returns in render tests.

    ``matrix``: (2, 3) frame -> crop; ``landmarks``: (68, 2) frame px; ``crop``: the frame's ``size`` px crop.
    """

    track = 0

    def __init__(self, image: np.ndarray, matrix: np.ndarray, landmarks: np.ndarray, size: int) -> None:
        from retarget.faces.align import warp_crop

        self.matrix, self.raw_matrix, self.landmarks = matrix, matrix, landmarks
        self.crop = warp_crop(image, matrix, size)


class ScriptedFaces:
    """A face backend whose faces (68 landmarks each, frame px) a test sets per frame.

    ``detect`` gives their boxes scaled to the image it is handed (the aligner's smaller copy),
    ``landmarks`` the face nearest the box (or, with none, a crumpled shape in the box, as a
    real predictor answers); ``detect_runs`` counts detector calls. ``width``: the frame's.
    """

    name = "scripted"

    def __init__(self, width: int) -> None:
        self.width = width
        self.faces: list[np.ndarray] = []
        self.detect_runs = 0

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        self.detect_runs += 1
        s = image.shape[1] / self.width
        return [np.concatenate([f.min(0), f.max(0)]).astype(np.float64) * s for f in self.faces]

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        s = image.shape[1] / self.width
        if not self.faces:
            rng = np.random.default_rng(7)
            return (box[:2] + rng.uniform(0, 1, (68, 2)) * (box[2:] - box[:2])).astype(np.float32)
        c = (box[:2] + box[2:]) / 2 / s
        near = min(self.faces, key=lambda f: float(np.linalg.norm(f.mean(0) - c)))
        return (near * s).astype(np.float32)
