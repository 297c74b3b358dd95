"""A text corpus for the language models of the KV-cache study: six Jane Austen novels (public
domain), or any plain-text files, named by `SICS_TEXT` (`make ... TEXT=`). Nothing is downloaded.

The novels come as Debian's `r-cran-janeaustenr`, without R: `apt-get download
r-cran-janeaustenr` and `dpkg-deb -x r-cran-janeaustenr_*.deb DIR` give the R package's files.
Its `data/Rdata.rdx` is an RDS index of `variables` -> (offset, length) into `data/Rdata.rdb`;
each blob there is 4 bytes of length, then zlib, then an R serialisation of a character vector
(one element per line), which `rdata` reads (the `kv` extra). Plain `.txt` files need nothing.

One novel is held out for evaluation, the others train: by default the smallest
(`northangerabbey`, 433,410 characters), so the five largest train. The corpus records where it
came from and a content hash, as CIFAR-10 does, so every cache key and output carries them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

HOW_TO_PROVIDE = ("give TEXT=DIR (or SICS_TEXT): a folder of .txt files, or Jane Austen's novels from Debian "
                  "(apt-get download r-cran-janeaustenr; dpkg-deb -x r-cran-janeaustenr_*.deb DIR; "
                  "pip install -e '.[kv]' for the reader)")  # fmt: skip
AUSTEN_NOVELS = ("emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility")


@dataclass(frozen=True)
class Corpus:
    """Texts by name, the one held out, and where they came from."""

    texts: dict[str, str]
    held_out: str
    source: str  # human-readable, recorded in every output
    source_id: str  # content key

    def __post_init__(self):
        if self.held_out not in self.texts:
            raise DataError(f"held-out text {self.held_out!r} is not in the corpus ({', '.join(sorted(self.texts))})")
        if len(self.texts) < 2:
            raise DataError("a corpus needs at least two texts: one held out, the rest to train on")

    @property
    def train(self) -> dict[str, str]:
        return {k: v for k, v in sorted(self.texts.items()) if k != self.held_out}

    @property
    def test(self) -> str:
        return self.texts[self.held_out]

    def train_bytes(self) -> np.ndarray:
        """The training texts as one byte stream (UTF-8), each followed by a blank line."""
        return encode("".join(text + "\n\n" for text in self.train.values()))

    def test_bytes(self) -> np.ndarray:
        return encode(self.test)


def encode(text: str) -> np.ndarray:
    """A text as the byte-level LM reads it: its UTF-8 bytes (the vocabulary is 256 bytes)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def held_out_contexts(stream: np.ndarray, context: int, window: int, n: int | None = None) -> np.ndarray:
    """Non-overlapping held-out contexts, (N, context + window + 1) bytes each, from the start
    of the held-out stream: a cached prefix of `context` positions, then a continuation `window`
    whose next bytes are predicted (the +1 is the last target). Every one of them, or the first `n`."""
    size = context + window + 1
    fit = len(stream) // size
    if fit == 0 or (n is not None and n > fit):
        raise DataError(f"the held-out text ({len(stream):,} bytes) holds {fit} contexts of {size} bytes, "
                        f"not {n or 'one'}")  # fmt: skip
    return stream[: (n or fit) * size].reshape(n or fit, size)


def _austen_files(root: Path) -> tuple[Path, Path] | None:
    """The package's (Rdata.rdx, Rdata.rdb) under `root`, wherever `dpkg-deb -x` put them."""
    for rdx in sorted(root.rglob("Rdata.rdx")):
        if rdx.parent.name == "data" and (rdx.parent / "Rdata.rdb").exists():
            return rdx, rdx.parent / "Rdata.rdb"
    return None


def read_austen(rdx: Path, rdb: Path) -> dict[str, str]:
    """The novels of the janeaustenr package, one string each (lines joined by newlines)."""
    try:
        from rdata import conversion, parser
    except ImportError:
        raise DataError(f"reading {rdx.parent} needs the rdata package: pip install -e '.[kv]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata: "Wrong extension .rdx for file in RDS format"
        index = conversion.convert(parser.parse_file(rdx))["variables"]
        blob = rdb.read_bytes()
        out = {}
        for name, (offset, length) in index.items():
            raw = blob[int(offset) : int(offset) + int(length)]
            out[str(name)] = "\n".join(str(line) for line in conversion.convert(parser.parse_data(zlib.decompress(raw[4:]))))
    return out


def read_texts(folder: Path) -> dict[str, str]:
    """Every `.txt` file of a folder (not below it), by file name without the suffix."""
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}


def load_corpus(spec: str | os.PathLike | None = None, held_out: str | None = None) -> Corpus:
    """The corpus at `spec`, else `SICS_TEXT`: the Austen package's files (found anywhere below),
    or a folder of `.txt` files; `held_out` defaults to the smallest text."""
    spec = spec or os.environ.get("SICS_TEXT") or None
    if spec is None:
        raise DataError(f"no text corpus given: {HOW_TO_PROVIDE}")
    root = Path(spec).expanduser()
    if not root.exists():
        raise DataError(f"text corpus {str(root)!r} does not exist: {HOW_TO_PROVIDE}")
    found = _austen_files(root) if root.is_dir() else None
    if found is not None:
        texts, kind = read_austen(*found), "Jane Austen's novels (janeaustenr)"
    elif root.is_dir():
        texts, kind = read_texts(root), "plain-text files"
    else:
        texts, kind = {root.stem: root.read_text(encoding="utf-8")}, "a plain-text file"
    if not texts:
        raise DataError(f"{root} holds no .txt file and no janeaustenr data: {HOW_TO_PROVIDE}")
    digest = hashlib.sha256()
    for name, text in sorted(texts.items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    held = held_out or min(sorted(texts), key=lambda k: len(texts[k]))
    return Corpus(texts, held, f"{kind} [{root.name}, {len(texts)} texts, {sum(map(len, texts.values())):,} characters]",
                  f"text-{digest.hexdigest()[:16]}")  # fmt: skip


@dataclass(frozen=True)
class TextData:
    """A corpus in the shape every study reads (as `Cifar10` is): `test_x` the held-out contexts,
    (N, context + window + 1) bytes; `test_y` the bytes the window predicts, one per predicted
    position, context-major (N·window). So the per-item results of a study are per predicted
    byte, and `cluster` (= window) consecutive items belong to one context: the statistics treat
    a context as they treat an image (`sics.analysis.summaries.per_cluster`)."""

    train_x: np.ndarray  # the training texts as one byte stream
    test_x: np.ndarray
    context: int
    window: int
    source: str
    source_id: str

    @property
    def train_y(self) -> np.ndarray:
        return self.train_x[1:]

    @property
    def test_y(self) -> np.ndarray:
        return self.test_x[:, self.context + 1 :].reshape(-1)

    def subset(self, n_train: int | None, n_test: int | None) -> TextData:
        """`n_test` of the held-out contexts, spread evenly over the held-out text (so a sample
        reads the whole novel, not its first chapters); the language model trains on the whole
        stream, so `n_train` must be None."""
        if n_train is not None:
            raise DataError("a language model's training stream is not subset: n_train must be None")
        if n_test is None or n_test >= len(self.test_x):
            return self
        idx = np.linspace(0, len(self.test_x) - 1, n_test).round().astype(int)
        return TextData(self.train_x, self.test_x[idx], self.context, self.window, self.source, self.source_id)


def load_text_data(spec: str | os.PathLike | None, profile) -> TextData:
    """The profile's corpus (`load_corpus`), cut into the held-out contexts its model reads."""
    corpus, m = load_corpus(spec), profile.model
    return TextData(corpus.train_bytes(), held_out_contexts(corpus.test_bytes(), m.context, m.window),
                    m.context, m.window, corpus.source, corpus.source_id)  # fmt: skip


def text_batches(x, y, profile, device):
    """The held-out contexts on `device` (the KV unit runs its own passes: no image batches)."""
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.int64), device=device)
