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
    import typing

    from retarget.config import RenderConfig, TrainConfig

    # every --amp value the configs accept, on every way of naming a device
    choices = set(typing.get_args(typing.get_type_hints(TrainConfig)["amp"]))
    assert choices == set(typing.get_args(typing.get_type_hints(RenderConfig)["amp"])) and "off" in choices
    cuda = ("cuda", torch.device("cuda"), torch.device("cuda", 1), "cuda:1")
    other = ("cpu", torch.device("cpu"), "mps", torch.device("mps"))
    for amp in choices:
        for device in other:
            assert amp_dtype(amp, device) is None, (amp, device)  # float32 off CUDA
        for device in cuda:
            got = amp_dtype(amp, device)
            if amp == "off":
                assert got is None
            else:  # a 16-bit float type autocast accepts, named by the option
                assert got in (torch.float16, torch.bfloat16) and torch.finfo(got).bits == 16, (amp, device)
                assert (got == torch.bfloat16) == (amp == "bf16"), (amp, device)
