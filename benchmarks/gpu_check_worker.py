"""The library-call steps of benchmarks/gpu_check.py, each run in a process of its own.

    python benchmarks/gpu_check_worker.py train JOB.json RESULT.json
    python benchmarks/gpu_check_worker.py resume JOB.json RESULT.json
    python benchmarks/gpu_check_worker.py official JOB.json RESULT.json

``train`` trains a fresh run (``retarget.train.train``) and reports its steps/s (timed
from the end of step 1, so set-up and cuDNN autotuning are left out), whether every
loss was finite and the process's peak memory (``torch.cuda.max_memory_allocated`` on
CUDA, peak resident memory on the CPU). ``resume`` continues a run on another device
(``resume_config(run, steps=..., device=...)``) and reports the step it started from
and the RNG state it started with (a SHA-256 per generator, compared by the caller
with the checkpoint's own). ``official`` times the release's step beside ours with
benchmarks/vs_official.py's functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from common import ROOT  # noqa: I001  (sets OMP_WAIT_POLICY before torch loads)

import torch  # noqa: E402

from retarget.train.loop import Hook, Trainer  # noqa: E402


def rng_digest(state: dict[str, Any]) -> dict[str, str]:
    """A SHA-256 per entry of a ``retarget.run.checkpoint.rng_state()`` dict (tensors by their bytes)."""
    out = {}
    for key, value in sorted(state.items()):
        raw = value.cpu().numpy().tobytes() if isinstance(value, torch.Tensor) else repr(value).encode()
        out[key] = hashlib.sha256(raw).hexdigest()
    return out


class Probe(Hook):
    """Records the start step, the RNG state at the start, every step's time and whether its losses were finite."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.start = -1
        self.rng: dict[str, str] = {}
        self.times: list[float] = []
        self.finite = True
        self.last: dict[str, float] = {}
        self.precision = ""

    def before_train(self, trainer: Trainer) -> None:
        from retarget.run.checkpoint import rng_state

        self.start = trainer.step
        self.precision = str(trainer.stepper.amp)  # what --amp resolved to for this run
        self.rng = rng_digest(rng_state())

    def after_step(self, trainer: Trainer) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        self.last = dict(trainer.losses)
        self.finite = self.finite and all(math.isfinite(v) for v in trainer.losses.values())


def peak_memory_mib(cuda: bool) -> float:
    """Peak GPU memory allocated by torch (CUDA) or peak resident memory of this process (CPU), in MiB."""
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _report(probe: Probe, result: Any, cuda: bool) -> dict[str, Any]:
    times = probe.times[:-1] if len(probe.times) > 3 else probe.times  # the last step also saves a checkpoint
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {
        "precision": probe.precision,
        "steps": int(result.steps),
        "start_step": probe.start,
        "start_rng": probe.rng,
        "its_per_s": rate,
        "losses_finite": probe.finite,
        "loss_G": probe.last.get("loss_G", float("nan")),
        "peak_mib": peak_memory_mib(cuda),
    }


def run_train(job: dict[str, Any]) -> dict[str, Any]:
    """A fresh run: ``job`` has a_dir, b_dir, out, preset, size, steps, amp, device, threads."""
    from retarget.config import TrainConfig, model_preset
    from retarget.train import train

    cuda = job["device"] == "cuda"
    big = 10**9
    cfg = TrainConfig(
        job["a_dir"],
        job["b_dir"],
        out=job["out"],
        preset=job["preset"],
        model=model_preset(job["preset"], size=job["size"]),
        steps=job["steps"],
        amp=job["amp"],
        device=job["device"],
        threads=job.get("threads"),
        checkpoint_every=job.get("checkpoint_every", big),
        preview_every=big,
        preview_frames=0,
        log_every=max(1, job["steps"] // 10),
        overwrite=True,
    )
    probe = Probe(cuda)
    return _report(probe, train(cfg, hooks=[probe]), cuda)


def run_resume(job: dict[str, Any]) -> dict[str, Any]:
    """Continue ``job["out"]`` to ``job["steps"]`` on ``job["device"]``."""
    from retarget.train import train
    from retarget.train.resume import resume_config

    cuda = job["device"] == "cuda"
    cfg = resume_config(job["out"], steps=job["steps"], device=job["device"], checkpoint_every=job["checkpoint_every"])
    probe = Probe(cuda)
    return _report(probe, train(cfg, hooks=[probe]), cuda)


def _timed(fn: Callable[[], Any], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def run_official(job: dict[str, Any]) -> dict[str, Any]:
    """The release's step and ours (float32 and --amp auto) at ``job["size"]``, interleaved for ``rounds`` rounds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import vs_official  # the benchmark's own functions: one definition of both steps

    from retarget.device import resolve_amp

    device = torch.device(job["device"])
    cuda = device.type == "cuda"
    columns = {
        "release_fp32": vs_official.official_step(Path(job["official"]), job["size"], device),
        "ours_fp32": vs_official.our_step(job["size"], "off", device),
        "ours_auto": vs_official.our_step(job["size"], "auto", device),
    }
    for fn in columns.values():  # warm-up: allocators, cuDNN autotuning
        _timed(fn, cuda)
    times: dict[str, list[float]] = {k: [] for k in columns}
    for _ in range(job["rounds"]):
        for name, fn in columns.items():
            times[name].append(_timed(fn, cuda))
    out: dict[str, Any] = {f"{k}_s_per_step": statistics.median(v) for k, v in times.items()}
    base = out["release_fp32_s_per_step"]
    out.update({f"{k}_x_release": base / statistics.median(v) for k, v in times.items() if k != "release_fp32"})
    out["auto_precision"] = resolve_amp("auto", device)
    out["peak_mib"] = peak_memory_mib(cuda)
    return out


WORKERS = {"train": run_train, "resume": run_resume, "official": run_official}


def main() -> None:
    kind, job_file, result_file = sys.argv[1:4]
    job = json.loads(Path(job_file).read_text())
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    result = WORKERS[kind](job)
    Path(result_file).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
