"""Training speed side by side with the official Recycle-GAN release, in one process.

    python benchmarks/vs_official.py                      # 128 px, official preset, release loss
    python benchmarks/vs_official.py --size 256 --rounds 3 --device cuda

The release's model code is imported from ``--official`` (default
``../shared/official-recycle-gan/rg``, see its README; it is never copied into this
project) and stepped with its own ``optimize_parameters`` on random triplets, batch 1,
with the options of its training script (resnet_6blocks, unet_128 predictor, 3-layer
PatchGAN, identity 0, no image pool). Ours runs the same architecture (``--preset
official``) and the same objective (``--cycle 0 --warp 0``, so no identity term, no
pool), once in float32 and once with ``--amp auto`` (bf16 autocast where the device
supports it natively, else float32: see docs/training.md "Mixed precision").

Steps are interleaved round by round (release, ours fp32, ours auto, ...), so load from
other processes hits every column alike; the table gives the median seconds per step
and each column's speed as a multiple of the release's. Name the CPU when you quote a
ratio: they differ between machines (``lscpu``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from common import environment, load_average  # noqa: I001

import torch  # noqa: E402

from retarget.config import LossConfig, model_preset  # noqa: E402
from retarget.device import resolve_amp  # noqa: E402
from retarget.nn.networks import build_networks  # noqa: E402
from retarget.nn.objectives import make_objective  # noqa: E402
from retarget.nn.step import Stepper, make_optimizers  # noqa: E402

DEFAULT_OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "official-recycle-gan" / "rg"
#: The release's objective: no spatial cycle (so no identity term), no warp term.
RELEASE_LOSS = LossConfig(cycle=0.0, warp=0.0)


def official_step(root: Path, size: int, device: torch.device):
    """A function running one release training step on fixed random triplets."""
    import argparse as ap

    sys.path.insert(0, str(root))
    from models.recycle_gan_model import RecycleGANModel  # the release's own module

    gpu = [device.index or 0] if device.type == "cuda" else []
    opt = ap.Namespace(
        isTrain=True, gpu_ids=gpu, checkpoints_dir="/tmp", name="vs_official", batchSize=1, fineSize=size,
        input_nc=3, output_nc=3, ngf=64, npf=64, ndf=64, which_model_netG="resnet_6blocks",
        which_model_netP="unet_256" if size >= 256 else "unet_128", which_model_netD="basic", n_layers_D=3,
        norm="instance", no_dropout=True, init_type="normal", no_lsgan=False, continue_train=False, lr=2e-4,
        beta1=0.5, pool_size=0, identity=0.0, lambda_A=10.0, lambda_B=10.0, lr_policy="lambda", niter=100,
        niter_decay=100, epoch_count=1, adversarial_loss_p=False, which_direction="AtoB",
    )  # fmt: skip
    torch.manual_seed(0)
    model = RecycleGANModel()
    model.initialize(opt)
    g = torch.Generator().manual_seed(0)
    inputs = {k: torch.rand(1, 3, size, size, generator=g) * 2 - 1 for k in ("A0", "A1", "A2", "B0", "B1", "B2")}
    inputs.update(A_paths=[""], B_paths=[""])

    def step() -> None:
        model.set_input(inputs)
        model.optimize_parameters()

    return step


def our_step(size: int, amp: str, device: torch.device):
    """A function running one of our steps (official preset, release loss) with ``amp``."""
    cfg = model_preset("official", size=size)
    torch.manual_seed(0)
    nets = {k: v.to(device) for k, v in build_networks(cfg).items()}
    g_opt, d_opt = make_optimizers(nets)
    stepper = Stepper(make_objective(cfg, RELEASE_LOSS, nets), g_opt, d_opt, amp=amp, device=device)
    g = torch.Generator().manual_seed(0)
    batch = {d: (torch.rand(1, 3, 3, size, size, generator=g) * 2 - 1).to(device) for d in "AB"}
    return lambda: stepper.step(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, default=DEFAULT_OFFICIAL, help="the release's rg/ folder")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (each runs every column once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if not (args.official / "models" / "recycle_gan_model.py").is_file():
        raise SystemExit(f"{args.official}: the official release's rg/ folder is not there (see --official)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    auto = resolve_amp("auto", device)
    print(environment(args.threads), f"device {device}, --amp auto -> {auto}")
    columns = {
        "release (fp32)": official_step(args.official, args.size, device),
        "ours fp32": our_step(args.size, "off", device),
        f"ours auto ({auto})": our_step(args.size, "auto", device),
    }

    def run(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for fn in columns.values():  # warm-up: allocators, oneDNN primitives, cuDNN autotuning
        run(fn)
        run(fn)
    times: dict[str, list[float]] = {k: [] for k in columns}
    for _ in range(args.rounds):
        for name, fn in columns.items():
            times[name].append(run(fn))
    base = statistics.median(times["release (fp32)"])
    print(f"{args.size} px, official preset, release loss, batch 1, {args.rounds} interleaved rounds:")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:22s} {med:7.3f} s/step (min {min(ts):.3f})  x{base / med:5.2f} the release's speed")
    print(f"at the end: {load_average()}")


if __name__ == "__main__":
    main()
