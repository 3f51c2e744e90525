"""The one --device resolver and --amp resolver of retarget.device; one GPU per CUDA rank."""

import pytest
import torch

from retarget.device import amp_dtype, cpu_has_native_bf16, cuda_index, device_kind, resolve_amp, resolve_device
from retarget.errors import RetargetError


def test_resolve_device_cpu_auto_and_unavailable_choices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("retarget.device.has_mps", lambda: False)
    assert device_kind("auto") == "cpu" and resolve_device("auto", local_rank=3) == torch.device("cpu")
    with pytest.raises(RetargetError, match="--device cuda: no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(RetargetError, match="--device mps: no MPS device"):
        resolve_device("mps")


def _gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_each_cuda_rank_takes_its_own_gpu(monkeypatch):
    _gpus(monkeypatch, 4)
    assert device_kind("auto") == "cuda"
    assert [resolve_device("auto", local_rank=r) for r in range(4)] == [torch.device("cuda", r) for r in range(4)]
    assert cuda_index(2, local_world=4) == 2
    # one visible GPU per process (srun --gpus-per-task 1): every rank takes it
    _gpus(monkeypatch, 1)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 0)


@pytest.mark.parametrize("gpus,local_rank,local_world", [(2, 3, None), (2, 0, 3), (1, 0, 2)])
def test_more_cuda_ranks_than_gpus_is_one_line(monkeypatch, gpus, local_rank, local_world):
    _gpus(monkeypatch, gpus)
    ranks = max(local_world or 0, local_rank + 1)
    with pytest.raises(RetargetError) as err:
        cuda_index(local_rank, local_world)
    text = str(err.value)
    assert f"{ranks} training processes" in text and f"{gpus} visible GPU" in text
    assert f"--nproc-per-node {gpus}" in text and "--device cpu" in text and "\n" not in text


def test_amp_auto_is_bf16_where_native_and_forced_values_apply_on_cpu_and_cuda(monkeypatch):
    monkeypatch.setattr("retarget.device.cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", "cpu") == "bf16" and amp_dtype("auto", "cpu") == torch.bfloat16
    # narrow networks stay float32 on a CPU (the bf16 kernels lose there), wide ones and GPUs do not
    assert resolve_amp("auto", "cpu", width=8) == "off" and resolve_amp("auto", "cpu", width=16) == "bf16"
    assert resolve_amp("bf16", "cpu", width=8) == "bf16"
    monkeypatch.setattr("retarget.device.cpu_has_native_bf16", lambda: False)
    assert resolve_amp("auto", "cpu") == "off" and amp_dtype("auto", "cpu") is None
    monkeypatch.setattr("retarget.device.cuda_has_native_bf16", lambda device: True)
    assert resolve_amp("auto", "cuda") == "bf16"
    monkeypatch.setattr("retarget.device.cuda_has_native_bf16", lambda device: False)  # before Ampere
    assert resolve_amp("auto", "cuda") == "fp16"
    for dev in ("cpu", "cuda"):
        assert amp_dtype("bf16", dev) == torch.bfloat16 and amp_dtype("fp16", dev) == torch.float16
        assert amp_dtype("off", dev) is None


def test_amp_on_mps_and_unknown_values(monkeypatch):
    assert resolve_amp("auto", "mps") == "off" and resolve_amp("off", "mps") == "off"
    with pytest.raises(RetargetError, match="--amp bf16: mixed precision runs on CUDA and CPU only, not mps"):
        resolve_amp("bf16", "mps")
    with pytest.raises(RetargetError, match="--amp fp32: unknown; choose one of auto, bf16, fp16, off"):
        resolve_amp("fp32", "cpu")


def test_native_bf16_comes_from_the_cpu_flags(monkeypatch):
    flags = {"avx512_bf16": False, "amx_bf16": False, "avx512_f": True}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: flags, raising=False)
    assert not cpu_has_native_bf16()  # AVX512 without its BF16 extension only emulates bf16
    flags["avx512_bf16"] = True  # AMD Zen 4, Intel Cooper Lake
    assert cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True}, raising=False)  # Sapphire Rapids
    assert cpu_has_native_bf16()
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"bf16": True}, raising=False)  # Arm (Graviton 3)
    assert cpu_has_native_bf16()
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not cpu_has_native_bf16()  # no oneDNN: no fast bf16 kernels
