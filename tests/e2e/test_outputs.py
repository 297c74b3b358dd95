"""`make paper PROFILE=ci` end to end (inline engine, tiny data): every promised output exists,
and sweep.csv shows the plateau and the selections the protocol asks for. The run is the shared
`ci_paper` fixture (tests/conftest.py)."""

import json

import numpy as np
import pandas as pd
from PIL import Image

from sics.analysis.claims import VERDICTS
from sics.selection.scorers import NINE

TABLES = [f"table{i}" for i in range(1, 6)] + ["dense", "claims", "claims_sweeps", "phase", "power", "seeds", "throughput"] + [
    f"ablation_{a}" for a in ("allocation", "envelope", "axis", "lambda", "recovery")] + [
    "criteria", "criteria_fine", "criteria_global", "criteria_spread", "adaptive", "matched", "claims_criteria"]  # 09
FIGURES = ["fig1", "fig2", "fig3", "fig_phase", "training_curve", "fig_seeds", "fig_criteria"]


def test_every_table_figure_and_record_is_made(ci_paper):
    figures = ci_paper
    out = figures / "ci"
    for t in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (out / f"{t}.{ext}").stat().st_size > 0, f"{t}.{ext}"
    for f in FIGURES:
        assert (out / f"{f}.pdf").read_bytes()[:5] == b"%PDF-", f
        with Image.open(out / f"{f}.png") as im:  # a real picture, not an empty canvas
            assert im.width > 600 and im.height > 400, f
            assert len(np.unique(np.asarray(im.convert("L")))) > 20, f
    for t in TABLES:  # every Markdown table says how it was made
        assert "profile=ci" in (out / f"{t}.md").read_text(), t

    sweep = pd.read_csv(out / "sweep.csv", dtype={"kappa": str, "mask_hash": str})
    assert {"scorer", "kappa", "sparsity", "seed", "accuracy", "mask_hash"} <= set(sweep.columns)
    assert sweep["accuracy"].between(0, 1).all()
    assert set(sweep["kappa"]) == {"0", "1", "2", "control", "baseline", "criterion", "matched"}  # 09: the last two
    assert sweep["tag"].str.startswith("ablation-").any()  # the ablations wrote their own rows
    main_rows = sweep[sweep["tag"] == "main"]
    assert (main_rows["allocation"] == "block").all() and (main_rows["recovery_steps"] == 0).all()
    for S in (0.5, 0.6, 0.7, 0.8):
        at = main_rows[main_rows["sparsity"] == S]
        assert set(NINE) <= set(at["scorer"]), S
        k0 = at[at["kappa"] == "0"]
        assert k0["mask_hash"].nunique() == 1 and k0["accuracy"].nunique() == 1
        nm = at[at["kappa"].isin(["1", "2", "control"])]
        assert (nm["mask_hash"] != k0["mask_hash"].iloc[0]).all()

    claims = pd.read_csv(out / "claims.csv")
    assert claims["claim"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]  # C7 and C1's measured part: 09
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert claims.loc[0, "basis"] == "construction + measured"
    assert claims.loc[0, "measured"].startswith("by construction; identical masks at 4/4 S")
    c3 = set(claims.loc[2, "family"].split(";"))
    assert {f"{n}@0.7" for n in ("logistic_smooth", "tent_smooth", "sine_smooth")} == c3

    # the tables carry the numbers of the sweep they were drawn from
    t1 = pd.read_csv(out / "table1.csv", dtype={"mask_hash": str, "kappa": str})
    k0 = t1[t1["kappa"] == "0"]
    assert (k0.groupby("sparsity")["mask_hash"].nunique() == 1).all()
    mag = main_rows[main_rows["scorer"] == "magnitude"].set_index("sparsity")["accuracy"] * 100
    for r in k0.itertuples():
        assert abs(r.acc - mag.loc[r.sparsity]) < 1e-9
    t2 = pd.read_csv(out / "table2.csv", dtype={"kappa": str})
    assert (t2.loc[t2["kappa"] == "0", "escape"] == 0).all()
    assert (t2["escape_low"] <= t2["escape"]).all() and (t2["escape"] <= t2["escape_high"]).all()
    phase = pd.read_csv(out / "phase.csv")
    assert sorted(phase["sparsity"].unique()) == [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    # 09: the criteria table and the verdicts at the main S, the fine grid in a table of its own,
    # where the adaptive selector is magnitude below its first boundary (S = 0.65)
    assert sorted(pd.read_csv(out / "criteria.csv")["sparsity"].unique()) == [0.5, 0.6, 0.7, 0.8]
    fine = pd.read_csv(out / "criteria_fine.csv")
    assert {"l1_magnitude", "fpgm", "wanda", "gradient", "random", "sics_adaptive"} <= set(fine["scorer"])
    assert (fine.groupby("scorer")["sparsity"].nunique() == 6).all()
    versus = pd.read_csv(out / "adaptive.csv")
    assert {"magnitude", "gradient", "l1_magnitude"} <= set(versus["versus"])
    low = versus[(versus["versus"] == "magnitude") & (versus["sparsity"] < 0.65)]
    assert len(low) == 3 and (low["mean"] == 0).all()
    assert (versus.loc[versus["versus"] == "gradient", "sparsity"].nunique()) == 6
    assert low["identical"].all() and "lamp" not in set(versus["versus"])  # LAMP per block is magnitude
    judged = pd.read_csv(out / "claims_criteria.csv").set_index("claim")["family"]
    assert {c.split("@")[1] for f in judged for c in f.split(";")} == {"0.5", "0.6", "0.7", "0.8"}

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["profile"] == "ci" and "torch" in prov["environment"]
    for stage in ("01_finetune", "02_plateau", "03_kappa_spectrum", "04_fake_nonmonotone",
                  "05_bump_vs_chaos", "06_claims", "09_criteria", "make_paper"):
        assert stage in prov["stages"], stage
    assert prov["stages"]["01_finetune"]["data"].startswith("CIFAR-10 image-folder archive tiny.tar.gz")
    assert prov["stages"]["02_plateau"]["ckpt_id"].startswith("ci-")

    # notebooks 07 (tokens of the ci ViT) and 08 (the tiny ResNet): same rules, their own folders
    for name in ("ci-tokens", "ci_resnet"):
        other = figures / name
        for t in ("table2", "claims"):
            assert "profile=ci" in (other / f"{t}.md").read_text(), (name, t)
        ledger = pd.read_csv(other / "claims.csv")
        # 09 ran on the ResNet too: its C1 gains the measured part (the verdict then depends on the
        # criteria) and C7 joins; the tokens' ledger is 07's alone
        criteria = name == "ci_resnet"
        assert ledger["claim"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6", *(["C7"] if criteria else [])], name
        assert "identical masks at" in ledger.loc[0, "measured"], name  # κ=0 selections identical
        assert ("measured:" in ledger.loc[0, "measured"]) == criteria, name
        assert all((other / f"{t}.csv").exists() == criteria for t in ("criteria", "matched", "claims_criteria")), name
        fig = "fig_units_ci.png" if name == "ci_resnet" else "fig_units.png"  # 08: one per ViT profile
        with Image.open(other / fig) as im:
            assert im.width > 900 and len(np.unique(np.asarray(im.convert("L")))) > 20, name
        rows = pd.read_csv(other / "sweep.csv", dtype={"kappa": str, "mask_hash": str})
        assert set(rows["unit"]) >= {"tokens-b-1-cls_attention" if name == "ci-tokens" else "conv_channels"}
        assert (other / "results.zip").exists()
    assert (figures / "ci-tokens" / "table2_norm.csv").exists()
    assert (figures / "ci_resnet" / "dense.csv").exists()


def test_the_revision_is_dirty_for_code_changes_not_for_regenerated_outputs(tmp_path, monkeypatch):
    import subprocess

    from sics import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "t.md").write_text("a")
    (tmp_path / "code.py").write_text("a")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    monkeypatch.delenv("SICS_GIT_REV", raising=False)
    clean = provenance.git_revision()
    assert len(clean) == 10 and not clean.endswith("+dirty")
    (tmp_path / "figures" / "t.md").write_text("b")
    assert provenance.git_revision() == clean
    (tmp_path / "code.py").write_text("b")
    assert provenance.git_revision() == clean + "+dirty"


def test_markdown_tables_do_not_depend_on_wcwidth(monkeypatch):
    """tabulate measures κ̂ (κ and a combining mark) as one column with wcwidth, two without:
    the written table must be the same either way."""
    import tabulate

    from sics.report.tables import markdown

    df = pd.DataFrame({"κ̂": ["0", "1"], "scorer": ["magnitude", "bump"]})
    mode = tabulate.WIDE_CHARS_MODE
    with_wcwidth = markdown(df)
    assert tabulate.WIDE_CHARS_MODE == mode  # left as it was
    monkeypatch.setattr(tabulate, "wcwidth", None)
    assert markdown(df) == with_wcwidth
