"""The one --device resolver and --amp map of retarget.device."""

import pytest
import torch

from retarget.device import amp_dtype, device_kind, resolve_device
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


def test_cuda_ranks_share_the_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_kind("auto") == "cuda" and resolve_device("auto", local_rank=3) == torch.device("cuda", 1)


def test_amp_only_on_cuda():
    assert amp_dtype("bf16", "cuda") == torch.bfloat16 and amp_dtype("fp16", "cuda") == torch.float16
    assert amp_dtype("off", "cuda") is None and amp_dtype("bf16", "cpu") is None
