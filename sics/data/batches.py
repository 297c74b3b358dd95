"""A split held on the device as uint8, and its batches: normalised and augmented there in a few
batched ops (no per-image Python)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class DeviceBatches:
    """A split held on the device as uint8; batches are normalised (and augmented) there."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        device: torch.device,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        img_size: int = 32,
    ) -> None:
        self.x = x.to(device, non_blocking=True)
        self.y = y.to(device, non_blocking=True)
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.img_size = img_size

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, profile, device: torch.device) -> DeviceBatches:
        """The images `x`, labels `y` on `device`, normalised and sized as `profile` says."""
        return cls(x, y, device=device, mean=profile.model.mean, std=profile.model.std, img_size=profile.model.img_size)

    def __len__(self) -> int:
        return len(self.y)

    def prepare(self, xb: torch.Tensor, augment: str = "none", generator=None) -> torch.Tensor:
        """uint8 NCHW -> normalised float, augmented on the device in a few batched ops."""
        if augment in ("crop_flip", "crop_flip_cutout"):
            xb = random_crop(xb, pad=4, generator=generator)
        if augment in ("flip", "crop_flip", "crop_flip_cutout"):
            flip = torch.rand(len(xb), device=xb.device, generator=generator) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
        x = xb.float().div_(255.0)
        if x.shape[-1] != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        if augment == "crop_flip_cutout":
            x = cutout(x, 8, generator=generator)
        return x

    def batches(self, batch_size: int, *, shuffle: bool = False, augment: str = "none", seed: int = 0,
                drop_last: bool = False):  # fmt: skip
        """Yield (inputs, labels); the order and augmentation depend only on `seed`.

        drop_last keeps every batch the same shape (no recompilation of a compiled model).
        """
        g = torch.Generator(device=self.device).manual_seed(seed)
        n = len(self)
        order = torch.randperm(n, device=self.device, generator=g) if shuffle else None
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size] if shuffle else slice(start, start + batch_size)
            yield self.prepare(self.x[idx], augment, g), self.y[idx]


def cutout(x: torch.Tensor, size: int, generator=None) -> torch.Tensor:
    """Zero (the mean, after normalising) one size x size square per image, inside the image
    (DeVries & Taylor 2017, as in Page's ResNet-9 recipe)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h - size + 1, (n, 1, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w - size + 1, (n, 1, 1, 1), device=x.device, generator=generator)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (rows >= cy) & (rows < cy + size) & (cols >= cx) & (cols < cx + size)
    return x.masked_fill(inside, 0.0)


def random_crop(x: torch.Tensor, pad: int, generator=None) -> torch.Tensor:
    """Pad-and-crop for a whole batch with one gather (each image its own offset)."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (torch.arange(h, device=x.device).view(1, h) + dy.view(n, 1)).view(n, 1, h, 1)
    cols = (torch.arange(w, device=x.device).view(1, w) + dx.view(n, 1)).view(n, 1, 1, w)
    b = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    ch = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return xp[b, ch, rows, cols]
