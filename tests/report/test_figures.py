"""Figures draw whatever is registered: a new baseline scorer gets a colour and a legend entry."""

from __future__ import annotations

import numpy as np
import pytest

from sics.cli.paper import main as paper
from sics.report import figures
from sics.selection.scorers import SCORERS, register


@pytest.mark.e2e  # a make paper of notebooks 01-03
def test_a_registered_baseline_scorer_is_drawn_in_figure_1(tiny_tree, monkeypatch):
    @register("weight_noise", kappa="baseline", stochastic=True)
    def weight_noise(block, S, rng):
        return block.m * rng.lognormal(0, 0.3, block.m.shape)

    monkeypatch.setitem(SCORERS, "weight_noise", SCORERS.pop("weight_noise"))  # removed after the test
    drawn = {}
    save = figures.save_figure

    def recording(fig, name, out):
        drawn[name] = {label for ax in fig.axes for label in ax.get_legend_handles_labels()[1]}
        return save(fig, name, out)

    monkeypatch.setattr(figures, "save_figure", recording)
    assert paper(["--profile", "ci", "--data", str(tiny_tree), "--engine", "inline", "--only", "01,02,03"]) == 0
    assert "weight_noise (κ=baseline)" in drawn["fig1"]
    pal = figures._class_palette({"weight_noise": "baseline", "gradient": "baseline", "bump": "baseline"})
    assert pal["weight_noise"] not in (pal["gradient"], pal["bump"]) and np.all(np.isfinite(pal["weight_noise"]))


def test_a_long_caption_is_broken_at_its_fields_to_the_figure_width():
    fields = ["profile=reference (6x128, H=512, patch 4)", "data=CIFAR-10 (JPEG q75 copy), n_test=10000",
              "measured on CPU (AMD EPYC, avx2, 2 threads), cpu-bf16 (emulated in fp32)", "ckpt=reference-8c6836ea2613",
              "rev=605c6e2ded"]  # fmt: skip
    caption = " | ".join(fields)
    wrapped = figures.wrap_caption(caption, 4.0)  # 4 in at 6 pt: 87 characters a line
    lines = wrapped.split("\n")
    assert len(lines) > 1 and all(len(line) <= 87 for line in lines)
    assert " | ".join(lines) == caption  # broken only between fields, nothing lost
    assert figures.wrap_caption(caption, 20.0) == caption  # a wide figure keeps one line
