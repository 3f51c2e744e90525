"""Image history pool (Shrivastava et al. 2017, as used by CycleGAN).

D is shown a mix of the newest fakes and older ones, which damps oscillation. Its
randomness comes from its own ``torch.Generator``, saved in ``state_dict`` together
with the stored images, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """Keeps up to ``size`` past fake images; ``size == 0`` passes images through.

    Args:
        size: capacity in images (50 in the release); 0 disables the pool.
        seed: seed of the pool's own generator.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.images: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: Tensor) -> Tensor:
        """Images for D, same shape as ``images`` ``[N, C, H, W]`` (detached).

        Per image: while the pool is filling it is stored and returned; afterwards with
        probability ½ it is returned, otherwise a random stored image is returned and the
        new one takes its place.
        """
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        draws = torch.rand(images.shape[0], generator=self.generator)
        picks = torch.randint(0, self.size, (images.shape[0],), generator=self.generator)
        for img, u, k in zip(images, draws.tolist(), picks.tolist()):
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif u > 0.5:
                out.append(self.images[k])
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out, 0)

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only (safetensors-friendly): ``images`` ``[n, C, H, W]`` on CPU (n may be 0)
        and ``rng`` (the generator state, uint8)."""
        if self.images:
            images = torch.stack([i.cpu() for i in self.images], 0).contiguous()
        else:
            images = torch.zeros(0)
        return {"images": images, "rng": self.generator.get_state().clone()}

    def load_state_dict(self, state: dict[str, Tensor], device: torch.device | str | None = None) -> None:
        """Restore :meth:`state_dict` output; images go to ``device`` (default CPU)."""
        images = state["images"]
        if images.numel() and images.shape[0] > self.size:
            raise ValueError(f"pool state holds {images.shape[0]} images, more than its size {self.size}")
        self.images = [i.to(device) if device is not None else i.clone() for i in images] if images.numel() else []
        self.generator.set_state(state["rng"].to(torch.uint8).cpu())
