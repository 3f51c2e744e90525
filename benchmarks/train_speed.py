"""Training speed: seconds per step, GFLOP per step and % of the CPU's fp32 matmul peak.

    python benchmarks/train_speed.py                 # official preset at 64/128/256, default at 128
    python benchmarks/train_speed.py --sizes 128 --presets official --steps 5 --variants
    python benchmarks/train_speed.py --sizes 128 --presets official --amp off auto   # float32 and --amp auto
    python benchmarks/train_speed.py --predictor-study ../shared/data/bikes.mp4

The official preset runs with the release's loss (``--cycle 0``: no spatial cycle) so
its figures compare like for like with the release; at 128 px the official and default
presets also run with the tool's default loss (cycle 10).

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode over one full step
(forward and backward of G, P and D; convolutions and matmuls). The matmul peak is a
large square ``torch.mm`` measured in the same run, interleaved with the steps, so load
from other processes hits both and the ratio stays meaningful. Everything uses
``torch.set_num_threads(THREADS)`` (2 by default).

``--variants`` also times the step with the alternatives we rejected (channels_last on
CPU, foreach instead of fused Adam), interleaved step by step, for docs/training.md.

``--objectives`` times the content-preserving terms (docs/training.md "Content
terms") against the plain step, interleaved step by step in one process, at the first
of ``--presets`` and ``--sizes``: ``+feature-match``, ``+content`` (a small scripted
detector-like f: 3 strided convs of width ``--content-width`` at ``--content-size``)
and both::

    python benchmarks/train_speed.py --objectives --presets tiny --sizes 64 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

# Before torch loads libgomp: idle OpenMP threads sleep instead of spinning. On a
# loaded machine a spinning thread steals the core its partner needs to reach the
# barrier; measured 25.8 -> 5.6 s per official 128 px step at load ~4 on 2 cores.
from common import environment, load_average  # noqa: I001

import torch  # noqa: E402

from retarget.config import LossConfig, model_preset  # noqa: E402
from retarget.nn.networks import build_networks  # noqa: E402
from retarget.nn.objectives import make_objective  # noqa: E402
from retarget.device import AMP_CHOICES, precision_name  # noqa: E402
from retarget.nn.step import Stepper, make_optimizers  # noqa: E402
from retarget.nn.pool import ImagePool  # noqa: E402
from retarget.nn.warp_loss import add_motion  # noqa: E402


def matmul_peak(n: int = 2048, reps: int = 3) -> float:
    """fp32 GFLOP/s of ``torch.mm`` on n x n matrices (best of ``reps``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


#: The release's objective: no spatial cycle (so no identity term), no warp term.
RELEASE_LOSS = LossConfig(cycle=0.0, warp=0.0)


def make_stepper(
    preset: str,
    size: int,
    loss: LossConfig,
    *,
    fused: bool = True,
    channels_last: bool = False,
    pool: int = 50,
    content=None,
    amp: str = "off",
    **arch,
):
    cfg = model_preset(preset, size=size, **arch)
    if size % 2**cfg.p_depth:
        # unet_128 cannot take 64 px (its bottleneck would be 1/2 px): one level less
        cfg = model_preset(preset, size=size, p_depth=size.bit_length() - 1)
    torch.manual_seed(0)
    nets = build_networks(cfg)
    obj = make_objective(cfg, loss, nets, content)
    g_opt, d_opt = make_optimizers(nets)
    if not fused:
        g_opt = torch.optim.Adam(g_opt.param_groups[0]["params"], lr=2e-4, betas=(0.5, 0.999), foreach=True)
        d_opt = torch.optim.Adam(d_opt.param_groups[0]["params"], lr=2e-4, betas=(0.5, 0.999), foreach=True)
    pools = {"A": ImagePool(pool, 1), "B": ImagePool(pool, 2)} if pool else None
    stepper = Stepper(obj, g_opt, d_opt, pools=pools, channels_last=channels_last, amp=amp)
    g = torch.Generator().manual_seed(0)
    batch = {d: torch.rand(1, 3, 3, size, size, generator=g) * 2 - 1 for d in "AB"}
    if obj.needs_motion:  # the warp term reads the source motion; the data brings it, not the step
        batch = add_motion(batch)
    return stepper, batch


def count_gflop(stepper: Stepper, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        stepper.step(batch)
    return counter.get_total_flops() / 1e9


def measure(name: str, stepper: Stepper, batch, steps: int) -> dict:
    """Interleave ``steps`` timed steps with matmul-peak probes; medians of both."""
    gflop = count_gflop(stepper, batch)  # also the warm-up (allocator, oneDNN primitives)
    times, peaks = [], []
    for _ in range(steps):
        peaks.append(matmul_peak())
        t = time.perf_counter()
        stepper.step(batch)
        times.append(time.perf_counter() - t)
    peaks.append(matmul_peak())
    s = statistics.median(times)
    peak = statistics.median(peaks)
    row = dict(name=name, gflop=gflop, s_it=s, best=min(times), gflops=gflop / s, peak=peak, frac=gflop / s / peak)
    print(
        f"{name:52s} {gflop:7.1f} GFLOP/it  {s:6.3f} s/it (best {min(times):.3f})  "
        f"{gflop / s:6.1f} GFLOP/s  peak {peak:6.1f}  {100 * gflop / s / peak:5.1f}% of peak",
        flush=True,
    )
    return row


def variants(rounds: int) -> None:
    """Official 128 px, release loss: the chosen step against rejected alternatives,
    interleaved step by step (round robin) so every variant sees the same load."""
    loss = RELEASE_LOSS
    cases = [("chosen", dict()), ("channels_last", dict(channels_last=True)), ("foreach Adam", dict(fused=False))]
    built = []
    for label, kw in cases:
        stepper, batch = make_stepper("official", 128, loss, **kw)
        built.append((label, stepper, batch))

    def run(stepper, batch) -> float:
        t = time.perf_counter()
        stepper.step(batch)
        return time.perf_counter() - t

    for _, stepper, batch in built:
        run(stepper, batch)  # warm-up
    times: dict[str, list[float]] = {label: [] for label, *_ in built}
    peaks = [matmul_peak()]
    for _ in range(rounds):
        for label, stepper, batch in built:
            times[label].append(run(stepper, batch))
        peaks.append(matmul_peak())
    base = statistics.median(times["chosen"])
    print(f"variants (official 128 px, cycle 0, interleaved, peak {statistics.median(peaks):.1f} GFLOP/s):")
    for label, ts in times.items():
        print(f"  {label:22s} {statistics.median(ts):6.3f} s/it  x{statistics.median(ts) / base:5.2f} of chosen")


def scripted_content_net(path: str, width: int, content_size: int):
    """Save a traced detector-like f (3 strided convs and a 1-channel head) to ``path``."""
    import warnings

    c = width
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, c, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(c, 2 * c, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(2 * c, 2 * c, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(2 * c, 1, 1),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(net, torch.zeros(1, 3, content_size, content_size)).save(path)


def objectives(preset: str, size: int, rounds: int, width: int, content_size: int | None) -> None:
    """The step with each content-preserving term against the plain step, interleaved."""
    import tempfile

    from retarget.nn.content import load_content_model

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "f.pt")
        scripted_content_net(path, width, content_size or size)
        f = load_content_model(path, torch.device("cpu"), size, content_size, "minus1_1")
    cases = [
        ("plain", LossConfig(), None),
        ("+feature-match", LossConfig(feature_match=1.0), None),
        ("+content", LossConfig(), {"A": f, "B": f}),
        ("+both", LossConfig(feature_match=1.0), {"A": f, "B": f}),
    ]
    built = [(label, *make_stepper(preset, size, loss, content=content)) for label, loss, content in cases]

    def run(stepper, batch) -> float:
        t = time.perf_counter()
        stepper.step(batch)
        return time.perf_counter() - t

    for _, stepper, batch in built:
        run(stepper, batch)  # warm-up
    flops = {label: count_gflop(stepper, batch) for label, stepper, batch in built}
    times: dict[str, list[float]] = {label: [] for label, *_ in built}
    for _ in range(rounds):
        for label, stepper, batch in built:
            times[label].append(run(stepper, batch))
    base = statistics.median(times["plain"])
    print(
        f"objectives ({preset} {size}px, default loss, batch 1, f width {width} at {content_size or size}px, "
        f"{rounds} interleaved rounds):"
    )
    for label, ts in times.items():
        print(
            f"  {label:16s} {flops[label]:7.2f} GFLOP/it  {statistics.median(ts):6.3f} s/it  "
            f"x{statistics.median(ts) / base:5.2f} of plain (GFLOP x{flops[label] / flops['plain']:.3f})",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--presets", nargs="+", default=["official", "default"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--amp",
        nargs="+",
        default=["off"],
        choices=AMP_CHOICES,
        help="precisions to time each configuration in (e.g. off auto); %% of peak is against the float32 peak",
    )
    ap.add_argument("--npf", type=int, default=None, help="predictor width of the default preset run")
    ap.add_argument("--p-depth", type=int, default=None, help="predictor depth of the default preset run")
    ap.add_argument("--variants", action="store_true", help="also time rejected alternatives at 128 px")
    ap.add_argument("--predictor-study", metavar="VIDEO", help="only run the predictor study on VIDEO")
    ap.add_argument("--study-steps", type=int, default=300)
    ap.add_argument("--objectives", action="store_true", help="only time the content-preserving terms")
    ap.add_argument("--content-width", type=int, default=16, help="width of the benchmark's content network")
    ap.add_argument("--content-size", type=int, default=None, help="input side of the content network [default: size]")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True
    print(environment(args.threads))
    if args.predictor_study:
        predictor_study(args.predictor_study, args.study_steps)
        return
    if args.objectives:
        objectives(args.presets[0], args.sizes[0], args.steps, args.content_width, args.content_size)
        return
    runs = [("official", size, 0.0) for size in args.sizes]
    if 128 in args.sizes:
        runs += [("official", 128, 10.0), ("default", 128, 10.0)]
    for preset, size, cycle in runs:
        if preset not in args.presets:
            continue
        arch = dict(npf=args.npf, p_depth=args.p_depth) if preset == "default" else {}
        loss = RELEASE_LOSS if cycle == 0 else LossConfig(cycle=cycle)
        for amp in args.amp:
            stepper, batch = make_stepper(preset, size, loss, amp=amp, **arch)
            cfg = stepper.objective.model_cfg
            label = (
                f"{preset} {size}px cycle={cycle:g} (npf {cfg.npf}, depth {cfg.p_depth}) {precision_name(stepper.amp)}"
            )
            measure(label, stepper, batch, args.steps if size < 256 else max(1, args.steps - 1))
            del stepper
    if args.variants:
        variants(args.steps)
    print(f"at the end: {load_average()}")


def predictor_study(video: str, steps: int, size: int = 128, batch: int = 4) -> None:
    """Evidence for the default predictor: train P alone on the real frames of ``video``
    (first 5/6 of the frames), report the held-out next-frame L1 (last 1/6) and the time
    of one P forward+backward, for the official U-Net and lighter ones."""
    import av
    import numpy as np

    from retarget.nn.losses import l1
    from retarget.nn.networks import UnetPredictor, count_parameters, init_weights

    frames = []
    with av.open(video) as container:
        for frame in container.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            side = min(h, w)
            img = img[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
            frames.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float())
    x = torch.nn.functional.interpolate(torch.stack(frames), size=(size, size), mode="area") / 127.5 - 1
    split = len(x) * 5 // 6
    train, test = x[:split], x[split:]

    def triplets(v: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([v[idx], v[idx + 1]], 1), v[idx + 2]

    test_in, test_out = triplets(test, torch.arange(len(test) - 2))
    print(
        f"{video}: {len(train)} train / {len(test)} held-out frames at {size}px; "
        f"copy-last-frame baseline L1 {l1(test[1:-1], test[2:]).item():.4f}"
    )
    for npf, depth in [(64, 7), (32, 7), (64, 5), (32, 5), (16, 5)]:
        torch.manual_seed(0)
        net = init_weights(UnetPredictor(2, npf, depth))
        opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(steps):
            inp, out = triplets(train, torch.randint(0, len(train) - 2, (batch,), generator=g))
            opt.zero_grad()
            loss = l1(net(inp), out)
            loss.backward()
            opt.step()
        per = (time.perf_counter() - t0) / steps
        with torch.no_grad():
            held = l1(net(test_in), test_out).item()
        print(
            f"P npf={npf:3d} depth={depth}: {count_parameters(net) / 1e6:6.2f} M params, "
            f"{per * 1000:6.0f} ms/step (batch {batch}), held-out L1 after {steps} steps {held:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
