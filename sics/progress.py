"""Progress bars that suit where the code runs: a Jupyter widget, a terminal, or nothing in CI.

`SICS_PROGRESS` chooses:
- `0` (or a set `CI` variable): no bars;
- `text`: plain-text bars on stderr, refreshed every `SICS_PROGRESS_INTERVAL` seconds (default 1)
  and `COLUMNS` wide. `make paper` asks its notebook kernels for these and streams their stderr
  to the terminal: the widget that tqdm.auto picks inside a kernel would not show there;
- anything else (the default): tqdm.auto, i.e. a widget in Jupyter and text in a terminal.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm


def enabled() -> bool:
    """Whether bars are shown at all: not in CI, not with `SICS_PROGRESS=0`."""
    return not os.environ.get("CI") and os.environ.get("SICS_PROGRESS", "1") != "0"


def text_mode() -> bool:
    return os.environ.get("SICS_PROGRESS") == "text"


def bar(iterable=None, *, desc: str, disable: bool = False, **kwargs):
    """A tqdm bar for this environment (see the module docstring); `disable` turns it off."""
    if text_mode():
        interval = float(os.environ.get("SICS_PROGRESS_INTERVAL") or 1.0)
        cols = int(os.environ.get("COLUMNS") or 0) or 100
        # ncols and nrows given, so tqdm does not probe the terminal (a kernel's descriptors may
        # report a 0x0 one, and tqdm then prints nothing)
        return text_tqdm(iterable, desc=desc, disable=disable, file=sys.stderr, mininterval=interval,
                         maxinterval=max(interval, 10.0), ncols=min(cols, 120), nrows=24, **kwargs)  # fmt: skip
    return auto_tqdm(iterable, desc=desc, disable=disable, **kwargs)


def note(progress_bar, line: str) -> None:
    """Print `line` above a running bar (to stderr, beside the bar, in text mode)."""
    if progress_bar.disable:
        return
    progress_bar.write(line, file=sys.stderr if text_mode() else None)
