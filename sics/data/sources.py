"""CIFAR-10 from any of three sources, decoded once into cached uint8 tensors.

Sources: (a) a torchvision root (downloaded when online), (b) an image-folder tree
`train/<class>/`, `test/<class>/`, (c) a `.tar.gz` of such a tree. JPEG decoding of 60,000
images takes ~24 s, so the decoded tensors are cached keyed by the source's content; later loads
take a second. A damaged cache file is decoded again, with a warning. Batches on the device are
`sics.data.batches`.
"""

from __future__ import annotations

import io
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image

from ..errors import DataError
from ..files import atomic_write, file_digest, stable_hash
from ..paths import cache_dir
from .classes import CLASSES

# The JPEG (quality 75) copy of CIFAR-10 used on this project's machines; results from it are labelled so.
KNOWN_ARCHIVES = {"d34c68f61cca57aa": "CIFAR-10 (JPEG q75 copy)"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
HOW_TO_PROVIDE = (
    "set SICS_DATA (or `make ... DATA=path`) to a torchvision CIFAR-10 root, an image-folder tree "
    "with train/<class>/ and test/<class>/, or a .tar.gz of such a tree"
)


@dataclass
class Cifar10:
    """Both splits as uint8 NCHW tensors (CPU), with where they came from."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # human-readable, recorded in every output
    source_id: str  # content key, part of every cache key downstream

    def subset(self, n_train: int | None, n_test: int | None, seed: int = 0) -> Cifar10:
        """A fixed, seeded subset of each split (the whole split when n is None)."""
        g = torch.Generator().manual_seed(seed)

        def pick(x: torch.Tensor, y: torch.Tensor, n: int | None):
            if n is None or n >= len(y):
                return x, y
            idx = torch.randperm(len(y), generator=g)[:n].sort().values
            return x[idx], y[idx]

        trx, tr_y = pick(self.train_x, self.train_y, n_train)
        tex, te_y = pick(self.test_x, self.test_y, n_test)
        return Cifar10(trx, tr_y, tex, te_y, self.classes, self.source, self.source_id)


def load_cifar10(spec: str | os.PathLike | None = None, *, download: bool = True) -> Cifar10:
    """Load CIFAR-10 from `spec`, `SICS_DATA`, or the torchvision download, via the tensor cache."""
    spec = spec or os.environ.get("SICS_DATA") or None
    if spec is None:
        root = cache_dir() / "torchvision"
        if not (root / "cifar-10-batches-py").is_dir():
            if not download:
                raise DataError(f"no CIFAR-10 data given: {HOW_TO_PROVIDE}")
            _torchvision_download(root)
        spec = root
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist: {HOW_TO_PROVIDE}")
    kind, key, label = _identify(path)
    cached = cache_dir() / "data" / f"cifar10-{key}.pt"
    if cached.exists():
        try:
            blob = torch.load(cached, weights_only=True)
            return Cifar10(**blob, classes=CLASSES, source=label, source_id=key)
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"data cache {str(cached)!r} is damaged ({type(e).__name__}); decoding again",
                          stacklevel=2)  # fmt: skip
            cached.unlink(missing_ok=True)
    if kind == "archive":
        splits = _decode_archive(path)
    elif kind == "folder":
        splits = _decode_folder(path)
    else:
        splits = _read_torchvision(path)
    blob = {f"{s}_{k}": v for s, (x, y) in splits.items() for k, v in (("x", x), ("y", y))}
    atomic_write(cached, lambda p: torch.save(blob, p))
    return Cifar10(**blob, classes=CLASSES, source=label, source_id=key)


def _torchvision_download(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as e:  # offline, DNS failure, HTTP error ...
        raise DataError(
            f"no CIFAR-10 data given and the download failed ({type(e).__name__}): {HOW_TO_PROVIDE}"
        ) from None


def _identify(path: Path) -> tuple[str, str, str]:
    """(kind, content key, label) of a data source."""
    if path.is_file():
        if not path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DataError(f"data path {str(path)!r} is a file but not a .tar.gz archive")
        digest = file_digest(path)
        label = KNOWN_ARCHIVES.get(digest, f"CIFAR-10 image-folder archive {path.name}")
        return "archive", f"tar-{digest}", f"{label} [{path.name}, sha256 {digest}...]"
    if (path / "train").is_dir() and (path / "test").is_dir():
        files = sorted(p for p in path.glob("*/*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
        key = stable_hash([(str(p.relative_to(path)), p.stat().st_size) for p in files])
        return "folder", f"dir-{key}", f"CIFAR-10 image-folder tree {path}"
    if (path / "cifar-10-batches-py").is_dir():
        return "torchvision", f"tv-{stable_hash(str(path))}", f"CIFAR-10 (torchvision) {path}"
    raise DataError(
        f"data path {str(path)!r} is neither a torchvision root nor a train/ test/ image tree"
    )


def _class_index(parts: tuple[str, ...], where: str) -> int:
    if parts[-2] not in CLASSES:
        raise DataError(f"unknown class folder {parts[-2]!r} in {where}; expected {CLASSES}")
    return CLASSES.index(parts[-2])


def _decode(data: bytes, name: str) -> torch.Tensor:
    try:
        img = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), ImageReadMode.RGB)
    except Exception as e:
        raise DataError(f"cannot decode image {name!r}: {e}") from None
    if img.shape[1:] != (32, 32):
        img = F.interpolate(img[None].float(), size=(32, 32), mode="bilinear", antialias=True)
        img = img[0].round().clamp(0, 255).to(torch.uint8)
    return img


def _stack(items: dict[str, list], where: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out = {}
    for split in ("train", "test"):
        if not items[split]:
            raise DataError(f"no {split}/<class>/ images found in {where}")
        items[split].sort(key=lambda t: t[0])  # deterministic order, whatever the archive's
        x = torch.stack([img for _, _, img in items[split]])
        y = torch.tensor([label for _, label, _ in items[split]], dtype=torch.int64)
        out[split] = (x, y)
    return out


def _decode_archive(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    items: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or not member.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                split = next((s for s in ("train", "test") if s in parts[:-2]), None)
                if split is None:
                    continue
                data = tar.extractfile(member).read()
                items[split].append((member.name, _class_index(parts, str(path)), _decode(data, member.name)))
    except (tarfile.TarError, EOFError, OSError, io.UnsupportedOperation) as e:
        raise DataError(f"cannot read data archive {str(path)!r} (corrupt or not a tar.gz): {e}") from None
    return _stack(items, str(path))


def _decode_folder(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    items: dict[str, list] = {"train": [], "test": []}
    for split in ("train", "test"):
        for p in sorted((path / split).glob("*/*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                items[split].append((str(p), _class_index(p.parts, str(path)), _decode(p.read_bytes(), str(p))))
    return _stack(items, str(path))


def _read_torchvision(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from torchvision.datasets import CIFAR10

    out = {}
    for split, train in (("train", True), ("test", False)):
        try:
            ds = CIFAR10(str(root), train=train, download=False)
        except Exception as e:
            raise DataError(f"cannot read torchvision CIFAR-10 at {str(root)!r}: {e}") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        out[split] = (x, torch.tensor(ds.targets, dtype=torch.int64))
    return out
