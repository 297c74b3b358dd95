"""Ship a study between machines: its inputs and outputs as plain files, each under a size limit,
with a manifest of their sha256.

    python -m sics.ship pack --profile scratch --out DIR     # on the machine that ran it
    python -m sics.ship restore DIR                          # back here: into figures/

What a study needs to regenerate and be verified elsewhere lives in its figures folders: the
weights (bf16 shards for a GPU run), `sweep.csv`, the results bundle, the calibration statistics,
and the tables, figures and provenance made from them. `pack` copies those of a profile (its own
folder, its other units' folders such as `scratch-tokens`, and the `fig_units_<profile>` files it
drew into another architecture's folder) into DIR/figures/, each file atomically (a kill leaves
the previous copy or the new one), and writes DIR/MANIFEST.json last. A lent GPU machine returns
files of at most 16 MB, so a larger file is left out and named in the manifest, never truncated.
`restore` checks every file against the manifest before copying it into place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from .errors import SicsError
from .io import write_json
from .paths import figures_root

LIMIT_BYTES = 16_000_000  # the lent machine's limit per returned file
MANIFEST = "MANIFEST.json"
SKIP_DIRS = ("notebooks",)  # executed notebooks and each run's record: local to the machine


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def study_files(profile: str, root: Path | None = None) -> list[Path]:
    """The files of `profile`'s studies under `root` (default: the figures folder), relative to it."""
    root = root or figures_root()
    if not root.exists():
        return []
    out: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p.name == profile or p.name.startswith(f"{profile}-"))):
        out += [f for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")
                and not set(f.relative_to(folder).parts[:-1]) & set(SKIP_DIRS)]  # fmt: skip
    out += sorted(f for f in root.glob(f"*/fig_units_{profile}.*") if f.parent.name != profile)  # another architecture's
    return [f.relative_to(root) for f in out]


def pack(profile: str, out: Path, root: Path | None = None, extra: dict | None = None) -> dict:
    """Copy the profile's study files into `out`/figures (changed ones only); write the manifest."""
    root = root or figures_root()
    files, left_out = {}, {}
    for rel in study_files(profile, root):
        src, dst = root / rel, out / "figures" / rel
        size = src.stat().st_size
        if size > LIMIT_BYTES:
            left_out[str(rel)] = f"{size} bytes, over the {LIMIT_BYTES}-byte limit per file"
            continue
        digest = sha256(src)
        if not (dst.exists() and dst.stat().st_size == size and sha256(dst) == digest):
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        files[str(rel)] = dict(sha256=digest, bytes=size)
    manifest = dict(profile=profile, files=files, left_out=left_out, **(extra or {}))
    write_json(out / MANIFEST, manifest)
    return manifest


def restore(src: Path, root: Path | None = None) -> list[str]:
    """Check the files under `src` against its manifest, then copy them into `root`."""
    root = root or figures_root()
    path = src / MANIFEST
    if not path.exists():
        raise SicsError(f"{src} has no {MANIFEST}: not a packed study (python -m sics.ship pack)")
    manifest = json.loads(path.read_text())
    for rel, want in manifest["files"].items():
        f = src / "figures" / rel
        if not f.exists() or sha256(f) != want["sha256"]:
            raise SicsError(f"{f} is missing or does not match its sha256 in {path}; nothing was restored")
    for rel in manifest["files"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "figures" / rel, root / rel)
    return sorted(manifest["files"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="copy a profile's study files into DIR/figures with a manifest")
    p.add_argument("--profile", required=True)
    p.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("restore", help="check a packed folder against its manifest and copy it into figures/")
    r.add_argument("src", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.command == "pack":
            m = pack(args.profile, args.out)
            total = sum(f["bytes"] for f in m["files"].values())
            print(f"[ship] {len(m['files'])} files, {total / 1e6:.1f} MB, in {args.out}"
                  + (f"; left out (too big): {', '.join(m['left_out'])}" if m["left_out"] else ""))  # fmt: skip
        else:
            print(f"[ship] restored {len(restore(args.src))} files into {figures_root()}")
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
