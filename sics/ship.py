"""Ship a study between machines, within what a lent GPU machine returns: at most 8 files, each
at most 16 MiB, 64 MiB in all, flat, named in letters, digits, '.', '_' and '-'.

    python -m sics.ship pack --profile scratch --out DIR     # on the machine that ran it
    python -m sics.ship restore DIR                          # back here: into figures/

What a study needs to regenerate and be verified elsewhere lives in its figures folders: the
weights, `sweep.csv`, the results bundle, the calibration statistics, the run's own records, and
the tables, figures and provenance made from them. `pack` writes those of a profile (its own
folder, its other units' folders such as `scratch-tokens`, and the `fig_units_<profile>` files it
drew into another architecture's folder) as:
- each weight shard, copied as it is (`<folder>.<shard name>`): written once, never changed;
- `study.tar`: everything a regeneration reads (rows, bundles, calibration, weights records,
  provenance, the run's records), with a MANIFEST.json inside that lists every file of the pack
  with its sha256, the shards included;
- `figures.tar`: the tables and figures made from them (which a CPU can redraw).
Each tar is replaced atomically, so a kill leaves the previous pack or the new one; the manifest
travels inside the tar it describes, so what comes back is always consistent. A file that does not
fit the limits is named in the manifest (`left_out`), never truncated. `restore` checks every
file against the manifest before copying it into place.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

from .errors import SicsError
from .files import sha256
from .paths import figures_root

LIMIT_BYTES = 16 * 2**20  # per returned file
TOTAL_BYTES = 64 * 2**20  # all returned files together
MAX_FILES = 8
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MANIFEST = "MANIFEST.json"
STUDY_TAR, FIGURES_TAR = "study.tar", "figures.tar"
SKIP_DIRS = ("notebooks",)  # executed notebooks and each run's record: local to the machine
RUN_RECORDS = "gpu_run"  # figures/<profile>/gpu_run/: the lent machine's own records of the run
PRESENTATION = (".md", ".tex", ".png", ".pdf")  # redrawn from the rest; `.csv` tables too, below


def study_files(profile: str, root: Path | None = None) -> list[Path]:
    """The files of `profile`'s studies under `root` (default: the figures folder), relative to it."""
    root = root or figures_root()
    if not root.exists():
        return []
    out: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p.name == profile or p.name.startswith(f"{profile}-"))):
        out += sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")
                      and not set(f.relative_to(folder).parts[:-1]) & set(SKIP_DIRS))  # fmt: skip
    out += sorted(f for f in root.glob(f"*/fig_units_{profile}.*") if f.parent.name != profile)  # another architecture's
    return [f.relative_to(root) for f in out]


def run_records(profile: str, root: Path | None = None) -> Path:
    """Where a packed run keeps its records (stages.tsv, run.log, gpu.txt, versions.txt,
    bench.json): inside the study's folder, so they travel and are committed with it."""
    return (root or figures_root()) / profile / RUN_RECORDS


def log_stage(profile: str, stage: str, status: str, seconds: float) -> None:
    """Append one line (stage, status, seconds) to the run's stages.tsv."""
    path = run_records(profile) / "stages.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{stage}\t{status}\t{seconds:.0f}\n")


def unfinished(profile: str, root: Path | None = None) -> list[str]:
    """The notebooks a packed run started or skipped without finishing (from its stages.tsv)."""
    path = run_records(profile, root) / "stages.tsv"
    if not path.exists():
        return []
    done, seen = set(), []
    for line in path.read_text().splitlines()[1:]:
        stage, status, _ = line.split("\t")
        if stage[:2].isdigit():
            seen.append(stage)
            done |= {stage} if status == "0" else set()
    return [s for s in dict.fromkeys(seen) if s not in done]


def is_shard(rel: Path) -> bool:
    return rel.name.startswith("weights-") and rel.suffix == ".safetensors"


def is_presentation(rel: Path) -> bool:
    """A table or figure (redrawn from the study's rows and bundle), not an input or a record."""
    if rel.suffix in PRESENTATION:
        return True
    return rel.suffix == ".csv" and rel.name != "sweep.csv" and "gpu_run" not in rel.parts


def _tar_bytes(root: Path, members: list[Path], manifest: dict | None) -> bytes:
    """A deterministic tar of `members` (fixed times and owners), with the manifest first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        items = ([(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())] if manifest else [])
        items += [(str(rel), (root / rel).read_bytes()) for rel in members]
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pack(profile: str, out: Path, root: Path | None = None) -> dict:
    """Write the profile's study into `out` as shards, study.tar and figures.tar; return the manifest."""
    root = root or figures_root()
    out.mkdir(parents=True, exist_ok=True)
    files = {str(rel): dict(sha256=sha256(root / rel), bytes=(root / rel).stat().st_size) for rel in study_files(profile, root)}
    left_out: dict[str, str] = {}
    shards = {rel: rel.replace("/", ".") for rel in files if is_shard(Path(rel))}
    inputs = [Path(r) for r in files if r not in shards and not is_presentation(Path(r))]
    shown = [Path(r) for r in files if r not in shards and is_presentation(Path(r))]
    used = sum(files[r]["bytes"] for r in shards)
    for rel, name in shards.items():
        if files[rel]["bytes"] > LIMIT_BYTES or not NAME.match(name):
            left_out[rel] = "over the per-file limit or not a returnable name"
        elif not ((out / name).exists() and sha256(out / name) == files[rel]["sha256"]):
            shutil.copyfile(root / rel, out / f".{name}.part")
            os.replace(out / f".{name}.part", out / name)
    shown_bytes = _tar_bytes(root, shown, None)
    for rel in [str(r) for r in inputs]:  # the inputs must fit one tar: say which do not
        if files[rel]["bytes"] > LIMIT_BYTES - 2**20:
            left_out[rel] = "over the per-file limit"
    inputs = [r for r in inputs if str(r) not in left_out]
    manifest = dict(profile=profile, files={r: f for r, f in files.items() if r not in left_out},
                    shards=shards, parts=[STUDY_TAR], left_out=left_out)  # fmt: skip
    room = TOTAL_BYTES - used - LIMIT_BYTES  # left for figures.tar beside the shards and a full study.tar
    if len(shown_bytes) <= min(LIMIT_BYTES, room) and len(shards) + 2 <= MAX_FILES:
        manifest["parts"].append(FIGURES_TAR)
    else:  # the tables and figures stay behind: a CPU redraws them from study.tar
        for r in shown:
            manifest["files"].pop(str(r))
            left_out[str(r)] = "no room in the returned files (redrawn from the rest)"
    if len(shards) + 1 > MAX_FILES:
        raise SicsError(f"{len(shards)} weight shards leave no room for {STUDY_TAR} among {MAX_FILES} files: larger shards")
    study = _tar_bytes(root, inputs, manifest)
    # over the limit: leave out calibration statistics, the largest first (selections are then
    # re-derived where they are verified; a regeneration does not read them)
    spare = sorted((r for r in inputs if r.name.startswith("calibration-")), key=lambda r: -files[str(r)]["bytes"])
    while len(study) > LIMIT_BYTES and spare:
        drop = spare.pop(0)
        inputs.remove(drop)
        manifest["files"].pop(str(drop))
        left_out[str(drop)] = f"no room in {STUDY_TAR}"
        study = _tar_bytes(root, inputs, manifest)
    if len(study) > LIMIT_BYTES:
        raise SicsError(f"{STUDY_TAR} would be {len(study)} bytes, over the {LIMIT_BYTES}-byte limit per file")
    _put(out / STUDY_TAR, study)
    if FIGURES_TAR in manifest["parts"]:
        _put(out / FIGURES_TAR, shown_bytes)
    elif (out / FIGURES_TAR).exists():
        (out / FIGURES_TAR).unlink()
    return manifest


def returned(out: Path) -> list[Path]:
    """The files `out` would return (what the device tool copies back)."""
    return sorted(p for p in out.iterdir() if p.is_file() and not p.name.startswith("."))


def restore(src: Path, root: Path | None = None) -> dict:
    """Check the pack in `src` against its manifest, then copy every file into `root`; returns
    the manifest (its `left_out` says what did not come back)."""
    root = root or figures_root()
    if not (src / STUDY_TAR).exists():
        raise SicsError(f"{src} has no {STUDY_TAR}: not a packed study (python -m sics.ship pack)")
    contents: dict[str, bytes] = {}
    for part in (STUDY_TAR, FIGURES_TAR):
        if (src / part).exists():
            with tarfile.open(src / part) as tar:
                contents.update({m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()})
    manifest = json.loads(contents.pop(MANIFEST))
    for rel, name in manifest["shards"].items():
        if rel in manifest["files"] and (src / name).exists():
            contents[rel] = (src / name).read_bytes()
    for rel, want in manifest["files"].items():
        data = contents.get(rel)
        if data is None or hashlib.sha256(data).hexdigest() != want["sha256"]:
            raise SicsError(f"{rel} is missing from {src} or does not match its sha256; nothing was restored")
    for rel in manifest["files"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(contents[rel])
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write a profile's study into DIR within the returned-file limits")
    p.add_argument("--profile", required=True)
    p.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("restore", help="check a packed folder against its manifest and copy it into figures/")
    r.add_argument("src", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.command == "pack":
            m = pack(args.profile, args.out)
            sizes = sum(p.stat().st_size for p in returned(args.out))
            print(f"[ship] {len(m['files'])} files in {len(returned(args.out))} returned files, {sizes / 1e6:.1f} MB, "
                  f"in {args.out}" + (f"; left out: {', '.join(m['left_out'])}" if m["left_out"] else ""))  # fmt: skip
        else:
            m = restore(args.src)
            print(f"[ship] restored {len(m['files'])} files into {figures_root()}")
            if m["left_out"]:
                print(f"[ship] did not come back: {', '.join(sorted(m['left_out']))}")
            left = unfinished(m["profile"])
            if left:
                print(f"[ship] the run did not finish {', '.join(left)}: regenerating those needs the data "
                      f"and evaluates here (make paper PROFILE={m['profile']} DATA=...)")  # fmt: skip
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
