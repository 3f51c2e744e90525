"""Multi-domain runs end to end: train D1 D2 D3, resume exactly, render --to every domain, one-line refusals."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch
from helpers import make_video, write_frames
from typer.testing import CliRunner

from retarget.cli import app
from retarget.config import LossConfig, TrainConfig, model_preset, replace
from retarget.errors import RetargetError
from retarget.run import checkpoint as ckpt
from retarget.run import layout, load_run
from retarget.train import train
from retarget.train.resume import resume_config
from retarget.views.runs import list_runs

TINY = ["--preset", "tiny", "--size", "32", "--device", "cpu", "--pool", "2"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    return (
        str(write_frames(root / "src", 8, size=36)),
        str(write_frames(root / "oil", 7, size=36, start=9)),
        str(write_frames(root / "ink", 6, size=36, start=18)),
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("video") / "in.mp4", frames=5, size=(40, 36))


def config(datasets, out, **kw):
    base = dict(steps=6, pool=2, checkpoint_every=100, preview_every=100, log_every=1, device="cpu", seed=4)
    base.update(kw)
    a, b, *more = datasets
    return TrainConfig(a, b, more=tuple(more), out=str(out), model=model_preset("tiny", size=32), **base)


def cli(*args):
    result = CliRunner().invoke(app, list(args))
    return result, result.output


# Renders compared for equality are lossless: libx264 given the same tiny frames twice in one
# process made different pictures in about 1 of 10 tries (its lookahead's frame-type choices;
# never at 176x144 and up), which lossless coding cannot show.
LOSSLESS = ["--crf", "0"]


def frames_of(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def weights(run_dir):
    return ckpt.read_weights(ckpt.latest_checkpoint(run_dir) / layout.WEIGHTS)


@pytest.fixture(scope="module")
def run3(datasets, tmp_path_factory):
    """A 3-domain run trained through the CLI (previews and the temporal clip on)."""
    out = tmp_path_factory.mktemp("runs") / "three"
    result, text = cli(
        "train",
        *datasets,
        "-o",
        str(out),
        *TINY,
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--preview-every",
        "2",
        "--preview-frames",
        "4",
        "--log-every",
        "1",
    )
    assert result.exit_code == 0, text
    return out


def test_three_datasets_train_one_conditional_model(run3):
    cfg = json.loads((run3 / layout.CONFIG).read_text())
    assert cfg["names"] == ["src", "oil", "ink"] and cfg["multi"] is True and cfg["model"]["domains"] == 3
    assert len(cfg["more"]) == 1 and cfg["more"][0].endswith("ink")  # absolute, as a_dir and b_dir
    meta, tensors = weights(run3)
    assert meta["networks"] == "G,D,P" and json.loads(meta["domains"]) == ["src", "oil", "ink"]
    assert {k.split(".")[0] for k in tensors} == {"G", "D", "P"}
    run = load_run(run3)
    assert run.domains == ("src", "oil", "ink") and list(run.data) == ["src", "oil", "ink"]
    assert run.data["ink"].name == "ink" and run.data["ink"].frames == 6 and run.step == 4
    lines = [json.loads(x) for x in (run3 / layout.METRICS).read_text().splitlines()]
    assert {"loss/x/cls", "loss/D/cls", "loss/x/recycle", "loss/x/warp"} <= set(lines[-1])
    last = lines[-1]
    per_target = [last["temporal/warp_error/oil"], last["temporal/warp_error/ink"]]  # src's clip to each other
    assert "temporal/warp_error/src" not in last and last["temporal/warp_error"] == pytest.approx(np.mean(per_target))
    import cv2

    grid = cv2.imread(str(run3 / layout.preview_file(4)))
    assert grid.shape[0] > 4 * (32 + 2)  # a row per domain, then the training batch's (test_preview_rows_...)
    clip = frames_of(run3 / layout.preview_file(4, layout.CLIP))
    source = frames_of(run3 / layout.source_clip_file())
    assert clip.shape[2] == 2 * source.shape[2]  # src's clip translated to oil and ink, side by side
    (row,) = list_runs(run3.parent)
    assert row.domains == ("src", "oil", "ink")
    page = (run3 / layout.REPORT).read_text()
    assert "3 domains: src · oil · ink" in page and "warp_error/ink" in page


@pytest.mark.kernels
def test_render_to_every_domain(run3, video, tmp_path):
    outs = {}
    for name in ("src", "oil", "ink"):
        out = tmp_path / f"to_{name}.mp4"
        result, text = cli("render", str(video), str(out), "-m", str(run3), "--to", name, "--stabilize", "0", *LOSSLESS)
        assert result.exit_code == 0, text
        source = "oil" if name == "src" else "src"  # the default --from: the first domain other than --to
        assert f"({source}->{name})" in text
        outs[name] = frames_of(out)
        assert outs[name].shape[0] == 5
    again = tmp_path / "again.mp4"
    result, text = cli("render", str(video), str(again), "-m", str(run3), "--to", "oil", "--stabilize", "0", *LOSSLESS)
    # exact: the same call on the same shapes runs the same kernels (and --crf 0 is lossless)
    assert np.array_equal(frames_of(again), outs["oil"])  # the same target twice: the same video
    assert not np.array_equal(outs["ink"], outs["oil"])  # another target: another video
    result, text = cli("render", str(video), str(tmp_path / "f.mp4"), "-m", str(run3), "--to", "ink", "--from", "oil")
    assert result.exit_code == 0 and "(oil->ink)" in text


@pytest.mark.kernels
def test_the_target_label_reaches_the_generator(run3):
    from retarget.nn.conditional import FixedTarget

    g = load_run(run3, names=("G",)).networks["G"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    outs = [FixedTarget(g, k)(x) for k in range(3)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    assert torch.equal(FixedTarget(g, 1)(x), outs[1])


@pytest.mark.parametrize(
    "args,message",
    [
        (["--to", "nope"], "--to nope: no such domain in this run; its domains are src, oil, ink"),
        (["--from", "nope", "--to", "oil"], "--from nope: no such domain"),
        ([], "translates between 3 domains (src, oil, ink): pick the target with --to NAME"),
        (["--to", "ink", "--from", "ink"], "--from ink --to ink: the same domain"),
        (["--to", "ink", "--direction", "b2a"], "both pick the target"),
    ],
)
def test_render_refusals_are_one_line(run3, video, tmp_path, args, message):
    result, text = cli("render", str(video), str(tmp_path / "o.mp4"), "-m", str(run3), *args)
    assert result.exit_code != 0 and message in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.kernels
def test_a_multi_domain_run_resumes_exactly(datasets, tmp_path):
    # other options than the defaults: the resumed run must take them (and the names) from its folder
    kw = dict(seed=9, lr=3e-4, names=("a", "b", "c"), batch_size=2, loss=LossConfig(warp=5.0, cls=2.0))
    full = train(config(datasets, tmp_path / "full", **kw))

    def stop(done, losses):
        if done == 3:
            raise KeyboardInterrupt

    part = train(config(datasets, tmp_path / "part", **kw), on_step=stop)
    assert part.interrupted and part.steps == 3
    resumed = train(resume_config(tmp_path / "part"))
    assert resumed.steps == full.steps == 6
    (_, a), (meta_b, b) = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert a.keys() == b.keys() and meta_b["domains"] == '["a", "b", "c"]'
    for k in a:
        # 6 Adam steps of lr 3e-4 moved each weight by up to 2e-3: 1e-5 tells a step replayed from one
        # lost or redone, and leaves room for a fresh process's other kernel choices (last bits)
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / layout.METRICS).read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    with pytest.raises(RetargetError, match=r"--names x,b,c: the run in .* was trained with a,b,c;"):
        resume_config(tmp_path / "part", names=("x", "b", "c"))


def test_time_limit_stops_a_multi_domain_run(datasets, tmp_path, monkeypatch):
    import itertools

    import retarget.train.loop as loop

    ticks = itertools.count()
    monkeypatch.setattr(loop, "_now", lambda: next(ticks) * 0.1)
    result = train(config(datasets, tmp_path / "run", steps=50, time_limit=1.0, preview_frames=0))
    assert result.stopped and "time limit" in result.stopped and result.steps < 50
    assert ckpt.checkpoint_steps(tmp_path / "run") == [result.steps]


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(names=("a", "a", "b")), "domain name 'a' is given twice; each domain needs its own name"),
        (dict(names=("a", "b")), "--names a,b: 2 names for 3 datasets"),
        (dict(names=("a", "b c", "d")), "domain name 'b c': use letters, digits"),
        (dict(loss=LossConfig(content_model_a="f.pt")), "--content-model-a/--content-model-b name a direction"),
        (dict(model=model_preset("tiny", size=32, domains=4)), "built for 4 domains, but 3 datasets are given"),
    ],
)
def test_multi_domain_refusals_are_one_line_and_write_nothing(datasets, tmp_path, change, message):
    cfg = replace(config(datasets, tmp_path / "run"), **change)
    with pytest.raises(RetargetError) as err:
        train(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_folders_of_the_same_name_need_names(tmp_path):
    a = write_frames(tmp_path / "x" / "frames", 4, size=36)
    b = write_frames(tmp_path / "y" / "frames", 4, size=36)
    c = write_frames(tmp_path / "z" / "frames", 4, size=36)
    cfg = config((str(a), str(b), str(c)), tmp_path / "run", steps=1)
    with pytest.raises(RetargetError, match="'frames' is given twice \\(the dataset folders' names\\); name the"):
        train(cfg)
    assert train(replace(cfg, names=("x", "y", "z"), preview_frames=0)).steps == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["{a}"], "one dataset is one domain; give at least two"),
        (["{a}", "{b}", "--names", "p,q"], "--names p,q: only a multi-domain run"),
        (["{a}", "{b}", "--cls", "3"], "--cls 3: the domain classifier's weight; only a multi-domain run"),
        (["{a}", "{b}", "--condition", "concat"], "--condition concat: how G reads its target domain"),
    ],
)
def test_train_cli_refusals_are_one_line(datasets, tmp_path, args, message):
    a, b, _ = datasets
    result, text = cli("train", *[x.format(a=a, b=b) for x in args], "-o", str(tmp_path / "r"), *TINY, "--steps", "1")
    assert result.exit_code != 0 and message in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.kernels
def test_two_datasets_with_multi_and_a_pair_from_before(datasets, video, tmp_path):
    a, b, _ = datasets
    multi = tmp_path / "multi"
    result, text = cli("train", a, b, "--multi", "-o", str(multi), *TINY, "--steps", "1", "--preview-frames", "0")
    assert result.exit_code == 0, text
    assert load_run(multi).domains == ("src", "oil") and load_run(multi).model_cfg.domains == 2
    result, text = cli("render", str(video), str(tmp_path / "m.mp4"), "-m", str(multi), "--direction", "b2a")
    assert result.exit_code == 0 and "(oil->src)" in text  # with two domains --direction still picks
    # a pair run whose config.json predates multi-domain runs: loads, renders, resumes
    pair = tmp_path / "pair"
    result, text = cli("train", a, b, "-o", str(pair), *TINY, "--steps", "1", "--preview-frames", "0")
    assert result.exit_code == 0, text
    saved = json.loads((pair / layout.CONFIG).read_text())
    for key in ("more", "multi", "names"):
        del saved[key]
    (pair / layout.CONFIG).write_text(json.dumps(saved))
    assert "domains" not in weights(pair)[0]
    run = load_run(pair)
    assert run.domains == () and set(run.networks) >= {"G_AB", "G_BA"} and run.train_cfg.more == ()
    outs = {}
    for name, args in [("b2a", ["--direction", "b2a"]), ("to_a", ["--to", "src"]), ("to_A", ["--to", "A"])]:
        out = tmp_path / f"{name}.mp4"
        result, text = cli("render", str(video), str(out), "-m", str(pair), "--stabilize", "0", *LOSSLESS, *args)
        assert result.exit_code == 0, text
        outs[name] = frames_of(out)
    assert np.array_equal(outs["b2a"], outs["to_a"]) and np.array_equal(outs["b2a"], outs["to_A"])
    other = tmp_path / "a2b.mp4"  # G_AB's video differs, so the check above can fail
    result, text = cli("render", str(video), str(other), "-m", str(pair), "--stabilize", "0", *LOSSLESS, "--to", "B")
    assert result.exit_code == 0 and not np.array_equal(frames_of(other), outs["b2a"]), text
    result, text = cli("render", str(video), str(tmp_path / "x.mp4"), "-m", str(pair), "--to", "ink")
    assert result.exit_code == 1 and "--to ink: no such domain in this run; its domains are A (src), B (oil)" in text
    result, text = cli("train", "--resume", str(pair), "--steps", "2")
    assert result.exit_code == 0, text
    assert load_run(pair).step == 2


@pytest.mark.kernels
def test_init_from_another_multi_domain_run(datasets, tmp_path):
    first = train(config(datasets, tmp_path / "first", steps=2, preview_frames=0))
    cfg = config(datasets, tmp_path / "second", steps=1, preview_frames=0, lr=1e-12, init_from=str(first.run_dir))
    second = train(cfg)
    a, b = weights(first.run_dir)[1], weights(second.run_dir)[1]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # started there (the LR barely moves it)
    assert json.loads((second.run_dir / layout.CONFIG).read_text())["init_from"] == str(first.run_dir.resolve())
    with pytest.raises(RetargetError, match="--swap exchanges the two sides of a pair"):
        train(replace(cfg, out=str(tmp_path / "third"), init_swap=True))
    pair = train(TrainConfig(*datasets[:2], out=str(tmp_path / "pair"), model=model_preset("tiny", size=32), steps=1))
    with pytest.raises(RetargetError, match="another architecture \\(domains 0 there, 3 here\\)"):
        train(replace(cfg, out=str(tmp_path / "fourth"), init_from=str(pair.run_dir)))
    assert not (tmp_path / "third").exists() and not (tmp_path / "fourth").exists()


@pytest.mark.kernels
def test_preview_rows_of_a_multi_domain_run(run3):
    from retarget.train.preview import domain_rows, name_targets, preview_rows

    run = load_run(run3, names=("G",))
    stills = np.stack([np.full((32, 32, 3), 60 * k, np.uint8) for k in range(3)])
    rows = domain_rows(run.networks["G"], stills, torch.device("cpu"), run.domains)
    assert [r.label for r in rows] == ["src", "oil", "ink"]
    assert all(r.titles == ["source", "to src", "to oil", "to ink"] and len(r.images) == 4 for r in rows)
    assert np.array_equal(rows[1].images[0], stills[1])  # each row starts with its domain's frame
    x = torch.from_numpy(stills[2:]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    from retarget.train.preview import to_uint8

    with torch.no_grad():
        want, *wrong = (to_uint8(run.networks["G"](x, torch.tensor([k]))[0]).astype(int) for k in (1, 0, 2))
    got = rows[2].images[2].astype(int)  # ink's frame to oil: G(x, 1)
    # the row came from a batch of 3, `want` from a batch of 1: other CPU kernels, floats that
    # differ in their last bits, so a pixel's uint8 rounding moves by at most 1 level
    assert np.abs(got - want).max() <= 1
    # and it is that target's picture, not another target's (nor the source frame itself)
    error = np.abs(got - want).mean()
    assert all(np.abs(got - other).mean() > error + 1 for other in [*wrong, stills[2].astype(int)])
    visuals = {"x/real_0": torch.zeros(1, 3, 8, 8), "x/fake_0": torch.zeros(1, 3, 8, 8)}
    visuals.update({f"x/to_{k}": torch.zeros(1, 3, 8, 8) for k in range(3)})
    (batch,) = name_targets(preview_rows(visuals), run.domains)
    assert batch.label == "batch" and batch.titles[-3:] == ["to src", "to oil", "to ink"]


def test_domains_are_named_after_the_folders_given_links_included(datasets, tmp_path, monkeypatch):
    from pathlib import Path

    from retarget.train.multi import resolve_domains
    from retarget.train.run_dir import default_run_dir

    a, b, _ = datasets
    links = tmp_path / "links"
    links.mkdir()
    (links / "faces_x").symlink_to(a)  # a symbolic link named after the person, to a folder named otherwise
    (links / "faces_y").symlink_to(b)
    x, y = str(links / "faces_x"), str(links / "faces_y")
    cfg = config((x, y), tmp_path / "unused", multi=True)
    assert resolve_domains(cfg).names == ("faces_x", "faces_y")
    monkeypatch.chdir(links)
    assert default_run_dir(replace(cfg, multi=False)) == Path("models/faces_x-to-faces_y")
    assert resolve_domains(config(("faces_x", "."), tmp_path / "unused", multi=True)).names == ("faces_x", "links")
    # a pair run saves the folders as given (absolute), so a resumed run keeps these names
    run = tmp_path / "pair"
    train(config((x, y), run, steps=1))
    saved = json.loads((run / layout.CONFIG).read_text())
    assert (saved["a_dir"], saved["b_dir"]) == (x, y)
    assert load_run(run).data_of("A").name == "faces_x"
