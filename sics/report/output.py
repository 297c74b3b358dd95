"""Where a notebook's tables and figures go, and the provenance line at their foot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Output:
    """An output folder and the caption every table and figure in it carries (`Stage.out`)."""

    folder: Path
    caption: str
