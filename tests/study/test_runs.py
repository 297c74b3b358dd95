"""Training runs: the identity of every run, the run-level interval (coverage with shared test
images, the negative control, width), the trimmed-mean check, and the recipe-level ledger."""

import numpy as np
import pandas as pd
import pytest

from sics.analysis import claims, runs, simulate, stats
from sics.paths import figures_root, run_dir

DATA_ID = "tar-d34c68f61cca57aa"  # the CIFAR-10 JPEG copy every committed model was trained on
# Run k is the recipe with train_seed k; run 0 is the committed network, whose id never changes.
RUN_IDS = {
    "reference": ["reference-8c6836ea2613", "reference-8a73b0da85d1", "reference-71ab15756ffc",
                  "reference-cbdbb017278c", "reference-ddc09c35e35d"],
    "resnet": ["resnet-d839948e3df8", "resnet-c4216a40487e", "resnet-a16f567bf38a",
               "resnet-ac4bc93bfb3f", "resnet-56133b821281"],
}  # fmt: skip


@pytest.mark.parametrize("profile", sorted(RUN_IDS))
def test_the_identity_of_every_run_is_pinned(profile):
    from sics.config import resolve_profile
    from sics.training.checkpoints import checkpoint_id, recipe_hash, resolved_recipe

    p = resolve_profile(profile)
    assert [checkpoint_id(p.replace(train_seed=k), DATA_ID) for k in range(5)] == RUN_IDS[profile]
    assert run_dir(profile, 0) == figures_root() / profile
    assert run_dir(profile, 3) == figures_root() / profile / "runs" / "3"
    import torch

    cpu = torch.device("cpu")
    hashes = {recipe_hash(resolved_recipe(p.replace(train_seed=k), cpu, DATA_ID)) for k in range(5)}
    assert len(hashes) == 1  # the seed is the only difference between runs
    other = recipe_hash(resolved_recipe(p.replace(train_precision="fp32", train_seed=1), cpu, DATA_ID))
    assert (other in hashes) == (resolved_recipe(p, cpu, DATA_ID)["train_precision"] == "fp32")
    with pytest.raises(ValueError, match="non-negative integer"):
        run_dir(profile, -1)


def test_committed_runs_share_their_recipe():
    """Every committed run k of a profile records train_seed k, and runs >= 1 one recipe hash: the
    hash of the recipe the profile resolves to today (an id or a recipe field added later must
    not move it)."""
    import json

    import torch

    from sics.config import resolve_profile
    from sics.paths import REPO
    from sics.training.checkpoints import recipe_hash, resolved_recipe

    for profile in RUN_IDS:  # the committed tree, not the tests' own figures folder
        found = sorted((REPO / "figures" / profile / "runs").glob("*/weights.json"))
        records = [json.loads(f.read_text()) for f in found]
        for f, meta in zip(found, records):
            k = int(f.parent.name)
            assert meta["training_fields"]["train_seed"] == k and meta["ckpt_id"] == RUN_IDS[profile][k]
        assert len({m["recipe_hash"] for m in records}) <= 1
        for f, meta in zip(found, records):  # the recorded recipe is what the profile resolves to now
            assert recipe_hash(meta["resolved_recipe"]) == meta["recipe_hash"], f
            k = int(f.parent.name)
            now = resolved_recipe(resolve_profile(profile, train_seed=k), torch.device("cpu"), DATA_ID)
            assert {**now, "train_precision": meta["resolved_recipe"]["train_precision"]} == meta["resolved_recipe"], f
        # run 0 predates the recipe hash: its training fields must be the runs' but for the seed
        run0 = json.loads((REPO / "figures" / profile / "weights.json").read_text())["training_fields"]
        for meta in records:
            assert {**meta["training_fields"], "train_seed": 0} == run0


SCENARIOS = [  # (K runs, n seeds per run, between-run SD, seed shape)
    (3, 5, 0.0, "normal"), (3, 5, 3.0, "normal"), (4, 10, 1.0, "t3"), (6, 20, 2.0, "t3"),
    (4, 10, 3.0, "outliers"), (5, 5, 0.5, "outliers"),
]  # fmt: skip


@pytest.mark.parametrize(("K", "n", "run_sd", "shape"), SCENARIOS)
def test_the_run_level_interval_covers_with_images_shared_across_runs(K, n, run_sd, shape):
    rng = np.random.default_rng(K * 1000 + n * 10 + int(run_sd * 3))
    reps, truth, image_se, shared = 2000, 1.0, 0.45, 0.6
    cover, width = [], []
    for _ in range(4):
        d = simulate.simulate_runs(rng, K, n, run_sd=run_sd, shape=shape, truth=truth, N=200,
                                image_se=image_se, shared=shared, reps=reps // 4)  # fmt: skip
        r = simulate.run_level_many(d)
        cover.append((r["low"] <= truth) & (truth <= r["high"]))
        width.append(r["high"] - r["low"])
    cov = np.mean(np.concatenate(cover))
    assert 0.93 <= cov <= 0.985, cov  # 95% nominal, ±3.5 binomial SE at 2000 replicates
    # width: the exact SE of the mean over runs, from the simulation's own parameters
    seed_var = 4.0 + (9.0 if shape == "outliers" else 0.0)
    own = (1 - shared) / 2 * image_se**2
    true_se = np.sqrt(shared * image_se**2 + (run_sd**2 + own + (seed_var + own) / n) / K)
    t = stats.sps.t.ppf(0.975, K - 1)
    mean_width = np.mean(np.concatenate(width))
    assert 2 * 1.96 * true_se < mean_width < 1.15 * 2 * t * true_se, (mean_width, true_se)


@pytest.mark.parametrize(("K", "n"), [(3, 5), (4, 20)])
def test_pooling_the_seeds_of_several_networks_under_covers(K, n):
    """The negative control: the seeds of K networks analysed as if they came from one."""
    rng = np.random.default_rng(7)
    d = simulate.simulate_runs(rng, K, n, run_sd=3.0, reps=1000, N=200)
    pooled = simulate.run_level_many(d, pooled=True)
    right = simulate.run_level_many(d)
    cov = lambda r: np.mean((r["low"] <= 1.0) & (1.0 <= r["high"]))  # noqa: E731
    assert cov(pooled) < 0.85 and cov(right) > 0.93


def test_the_vectorised_and_the_per_study_interval_agree():
    rng = np.random.default_rng(3)
    d = simulate.simulate_runs(rng, 3, 4, run_sd=1.0, reps=2, N=300)
    many = simulate.run_level_many(d)
    for i in range(2):
        one = stats.run_level_escape(list(d[i]))
        assert np.allclose([one.mean, one.low, one.high, one.se_image], [many["mean"][i], many["low"][i],
                                                                          many["high"][i], many["se_image"][i]])
        assert one.n_seeds == 3
    single = stats.run_level_escape([d[0, 0]])
    assert np.isnan(single.low) and np.isnan(single.high)  # one network: no interval about a recipe
    with pytest.raises(ValueError, match="share the test images"):
        stats.run_level_escape([d[0, 0], d[0, 1][:, :10]])


@pytest.mark.parametrize(("n", "shape"), [(10, "normal"), (20, "t3"), (5, "normal")])
def test_the_trimmed_mean_interval_covers_for_symmetric_seeds(n, shape):
    rng = np.random.default_rng(n)
    d = simulate.simulate_runs(rng, 1, n, run_sd=0.0, shape=shape, reps=600, N=200)
    hits = []
    for i in range(len(d)):
        r = stats.trimmed_escape(d[i, 0])
        hits.append(r.low <= 1.0 <= r.high)
    assert 0.92 <= np.mean(hits) <= 0.99, np.mean(hits)


def test_p_at_the_margin_is_the_interval_test_of_the_margin():
    rng = np.random.default_rng(0)
    d = rng.normal(0.8, 3.0, (6, 500))
    e = stats._paired_from_diff(d)
    assert np.isclose(stats.p_at(e.mean, e.se_seed, e.se_image, 6, 0.0), e.p_value)
    # at the level 1 − p the interval just touches the margin
    p = float(stats.p_at(e.mean, e.se_seed, e.se_image, 6, 0.5))
    lo, hi = e.interval(1 - p)
    assert np.isclose(lo if e.mean > 0.5 else hi, 0.5, atol=1e-6)


def test_the_robust_column_says_where_the_trimmed_mean_would_change_a_verdict():
    """A C3 escape carried by two outlier seeds: the mean reads it, the trimmed mean does not."""
    rows = []
    for S in (0.5, 0.6, 0.7, 0.8):
        for scorer, kappa in (("magnitude", "0"), ("logistic_smooth", "1"), ("logistic_raw", "2")):
            e, lo, hi = (3.0, 1.0, 5.0) if (S == 0.7 and kappa == "1") else (0.0, -0.3, 0.3)
            r_e, r_lo, r_hi = (0.2, -0.3, 0.7) if (S == 0.7 and kappa == "1") else (e, lo, hi)
            rows.append(dict(scorer=scorer, kappa=kappa, sparsity=S, allocation="block", recovery_steps=0,
                             escape=e, escape_low=lo, escape_high=hi, escape_se_seed=0.0,
                             escape_se_image=(hi - lo) / 3.92, n_seeds=10, robust=r_e, robust_low=r_lo,
                             robust_high=r_hi, robust_se_seed=0.0, robust_se_image=(r_hi - r_lo) / 3.92,
                             robust_n=6, mask_hash=scorer, acc=50.0))  # fmt: skip
    led = claims.ledger(pd.DataFrame(rows), None, ["C3"]).iloc[0]
    assert led["verdict"] == "smaller than the paper" and led["robust"] == "not the paper's size"
    assert claims.ledger(pd.DataFrame(rows).drop(columns=["robust"]), None, ["C3"])["robust"].iloc[0] == ""


def _study(rng, escape: float, n_seeds: int = 4, n_images: int = 2000):
    """A synthetic single-run study: rows and per-image results for magnitude and one κ=1 class at
    S = 0.7, the class right on `escape` more images (points) than the plateau in every seed."""
    base = rng.random(n_images) < 0.6
    rows, correct = [], {}
    rows.append(dict(scorer="magnitude", kappa="0", kappa_hat=0, sparsity=0.7, seed=0, allocation="block",
                     recovery_steps=0, params="{}", mask_hash="mag", overlap_magnitude=1.0, jaccard_magnitude=1.0))  # fmt: skip
    correct[("mag", 0, 0)] = base
    for s in range(n_seeds):
        c = base.copy()
        flip = rng.choice(np.flatnonzero(~c), int(escape / 100 * n_images), replace=False)
        c[flip] = True
        h = f"ls{s}-{rng.integers(1 << 30)}"
        rows.append(dict(scorer="logistic_smooth", kappa="1", kappa_hat=1, sparsity=0.7, seed=s,
                         allocation="block", recovery_steps=0, params="{}", mask_hash=h,
                         overlap_magnitude=0.9, jaccard_magnitude=0.8))  # fmt: skip
        correct[(h, 0, 0)] = c
    return pd.DataFrame(rows), correct


def test_the_recipe_ledger_judges_the_runs_and_counts_where_each_verdict_holds():
    rng = np.random.default_rng(5)
    study = {k: _study(rng, e) for k, e in enumerate((2.0, 2.5, 1.5))}
    summary = runs.summarize_runs(study)
    row = summary[summary["scorer"] == "logistic_smooth"].iloc[0]
    assert row["n_runs"] == 3 and np.isclose(row["escape"], 2.0, atol=0.05)
    assert row["escape_low"] < 2.0 < row["escape_high"] and row["escape_low"] > 0
    led = runs.recipe_ledger(study, claims=["C3"]).iloc[0]
    assert led["runs"] == 3 and led["holds_in"].endswith("/3")
    assert led["run_verdicts"].count(":") == 3
    per_run = [runs.run_ledger(r, c, claims=["C3"])["verdict"].iloc[0] for r, c in study.values()]
    assert led["holds_in"] == f"{sum(v == led['verdict'] for v in per_run)}/3"
    var = runs.variance_table(study)
    assert list(var["scorer"]) == ["logistic_smooth"] and var["run_mean_sd"].iloc[0] > 0.3


def _cells(escape: float, run_sd: float, seed_sd: float = 2.0, image_se: float = 0.3):
    names = {"logistic_smooth": "1", "tent_smooth": "1", "sine_smooth": "1", "logistic_raw": "2", "tent_raw": "2"}
    summary = pd.DataFrame([dict(scorer=n, kappa=k, sparsity=S, escape=escape if (S == 0.7 and k == "1") else 0.0)
                            for S in (0.5, 0.6, 0.7, 0.8) for n, k in names.items()])  # fmt: skip
    var = summary[["scorer", "sparsity"]].assign(between_runs_sd=run_sd, seed_sd=seed_sd, image_se=image_se)
    return var, summary


def test_the_rule_power_sees_the_spread_between_runs():
    """A clear C3 escape is decided at K = 3 when runs agree; a wide between-run spread needs more runs."""
    var, summary = _cells(escape=4.0, run_sd=0.2)
    p = runs.recipe_power(var, summary, k_grid=(3,), reps=150)
    c3 = p[(p["claim"] == "C3")].set_index("verdict")["share"]
    assert c3.get("smaller than the paper", 0) + c3.get("supported", 0) > 0.8
    var, summary = _cells(escape=4.0, run_sd=4.0)
    p = runs.recipe_power(var, summary, k_grid=(3, 12), reps=150)
    decided = p[(p["claim"] == "C3") & (p["verdict"] != "inconclusive")].groupby("runs")["share"].sum()
    assert decided.get(3, 0) < 0.6 < decided.get(12, 0)
    need = runs.runs_needed(p).set_index("claim")
    assert need.loc["C3", "runs_needed"] == 12 and need.loc["C3", "verdict"] != "inconclusive"


def _pair_study(rng, offset: float, seed_sd: float = 1.0, n_seeds: int = 5, n_images: int = 4000):
    """A synthetic run with the C5 pair at S = 0.7: fake_nonmonotone (deterministic) `offset`
    points below the plateau, gradient (stochastic) on it give or take `seed_sd` per seed."""
    base = rng.random(n_images) < 0.6
    rows, correct = [], {}

    def add(scorer, kappa, seed, c):
        h = f"{scorer}{seed}-{rng.integers(1 << 30)}"
        rows.append(dict(scorer=scorer, kappa=kappa, kappa_hat=int(kappa), sparsity=0.7, seed=seed,
                         allocation="block", recovery_steps=0, params="{}", mask_hash=h))  # fmt: skip
        correct[(h, 0, 0)] = c

    def moved(points):
        c = base.copy()
        k = int(round(abs(points) / 100 * n_images))
        idx = rng.choice(np.flatnonzero(~c if points > 0 else c), k, replace=False)
        c[idx] = points > 0
        return c

    add("magnitude", "0", 0, base)
    add("fake_nonmonotone", "2", 0, moved(offset))
    for s in range(n_seeds):
        add("gradient", "0", s, moved(rng.normal(0.0, seed_sd)))
    return pd.DataFrame(rows), correct


def test_the_paired_claims_have_their_variance_and_their_power():
    """C5's difference fake − gradient: its between-run SD is seen in `pair_variance`, and the power
    of C5's whole rule at K runs follows from it (decided at K = 3 when the runs agree)."""
    rng = np.random.default_rng(11)
    offsets = (-3.0, -5.0, -4.0)
    study = {k: _pair_study(rng, o, seed_sd=0.3) for k, o in enumerate(offsets)}
    pv = runs.pair_variance(study)
    row = pv[pv["claim"] == "C5"].iloc[0]
    assert row["scorer"] == "fake_nonmonotone − gradient" and row["runs"] == 3 and row["seeds_per_run"] == 5
    assert abs(row["escape"] - np.mean(offsets)) < 0.5
    assert abs(row["run_mean_sd"] - np.std(offsets, ddof=1)) < 0.4 and 0.7 < row["between_runs_sd"] < 1.3
    assert 0.15 < row["seed_sd"] < 0.5
    var, summary = _cells(escape=0.0, run_sd=0.2)
    for sd, decided_at_3 in ((0.2, True), (4.0, False)):
        paired = pd.DataFrame([dict(claim="C5", scorer="fake − gradient", sparsity=S, between_runs_sd=sd,
                                    seed_sd=1.0, image_se=0.2, escape=-4.0) for S in (0.5, 0.6, 0.7, 0.8)])  # fmt: skip
        p = runs.recipe_power(pd.concat([var.assign(claim=""), paired]), summary, k_grid=(3,), reps=150)
        c5 = p[p["claim"] == "C5"].set_index("verdict")["share"]
        assert bool(c5.get("supported", 0) > 0.8) == decided_at_3
    assert "C6" not in set(p["claim"])  # no variance rows for it: no power claimed
    assert "C5" not in set(runs.recipe_power(var, summary, k_grid=(3,), reps=20)["claim"])


def test_the_criteria_claims_have_their_power():
    """C1 (measured) and C7 at K runs: criteria far off the plateau and alike across runs are
    refuted at K = 3; on the plateau within a tight margin, supported; C1 by construction is read
    from the masks and never drawn."""

    def case(offset: float, run_sd: float, kappa0_masks=("m", "m")):
        rows, var = [], []
        for S in (0.5, 0.6, 0.7, 0.8):
            for n, h in zip(("magnitude", "magnitude_sq"), kappa0_masks):
                rows.append(dict(scorer=n, kappa="0", sparsity=S, escape=0.0, mask_hash=h, acc=50.0))
            for n in ("l1_magnitude", "wanda"):
                rows.append(dict(scorer=n, kappa="crit", sparsity=S, escape=offset, mask_hash=n, acc=50.0 + offset))
                var.append(dict(scorer=n, sparsity=S, between_runs_sd=run_sd, seed_sd=0.0, image_se=0.05))
        summary = pd.DataFrame(rows)
        p = runs.recipe_power(pd.DataFrame(var), summary, k_grid=(3,), reps=100,
                              criteria=(["l1_magnitude", "wanda"], ["l1_magnitude"]))  # fmt: skip
        return p.set_index(["claim", "verdict"])["share"]

    far = case(-5.0, 0.3)
    assert far[("C7", "not supported")] > 0.9 and far[("C1", "not supported")] > 0.9
    near = case(0.0, 0.05)
    assert near[("C7", "supported")] > 0.9 and near[("C1", "supported")] > 0.9
    wide = case(-5.0, 6.0)
    assert wide.get(("C7", "inconclusive"), 0) > 0.5
    masks_differ = case(0.0, 0.05, kappa0_masks=("m", "other"))
    assert masks_differ[("C1", "not supported")] == 1.0 and masks_differ[("C7", "supported")] > 0.9


def _committed_runs():
    """(study folder, unit, run k, its folder) of every committed training run k >= 1."""
    from sics.paths import REPO

    units = {"reference": "mlp_channels", "resnet": "conv_channels", "reference-tokens": "tokens",
             "reference-experts": "experts"}
    for study, unit in units.items():
        for folder in sorted((REPO / "figures" / study / "runs").glob("[0-9]*")):
            if (folder / "sweep.csv").exists():
                yield study, unit, int(folder.name), folder


@pytest.mark.parametrize(("study", "unit", "run", "folder"), list(_committed_runs()) or [pytest.param(
    None, None, None, None, marks=pytest.mark.skip(reason="no training run committed yet"))])
def test_every_committed_run_keeps_its_identity(study, unit, run, folder):
    """Its rows' checkpoint id, their keys recomputed from their configuration, and the name of
    its calibration file, all as the run's identity makes them."""
    import json
    from types import SimpleNamespace

    from sics.config import resolve_profile
    from sics.selection.scorers import get_scorer
    from sics.study.calibration import file_name
    from sics.study.rows import read_rows
    from sics.study.sweep import row_key
    from sics.units import get_unit

    profile = resolve_profile(study.split("-")[0])
    rows = read_rows(folder / "sweep.csv")
    assert set(rows["ckpt_id"]) == {RUN_IDS[profile.name][run]}
    kind = get_unit(unit) if unit != "tokens" else get_unit("tokens", block=-1, importance="cls_attention")
    fake = SimpleNamespace(trained=SimpleNamespace(ckpt_id=RUN_IDS[profile.name][run]), n_test=int(rows["n_test"].iloc[0]),
                           profile=profile, unit=kind, default_unit=kind.name == "mlp_channels" and not kind.key())  # fmt: skip
    for r in rows.head(40).itertuples():
        params = json.loads(r.params) if isinstance(r.params, str) else {}
        assert row_key(fake, r.scorer, r.sparsity, int(r.seed), params, r.allocation, int(r.recovery_steps)) == r.key
        assert get_scorer(r.scorer)  # every scorer of a committed run is registered
    weights = json.loads((folder.parents[2] / profile.name / "runs" / str(run) / "weights.json").read_text())
    identity = dict(ckpt_id=weights["ckpt_id"], weights_sha256=weights["sha256"], n_calib=profile.n_calib,
                    n_test=fake.n_test, data_id=json.loads(
                        __import__("zipfile").ZipFile(folder / "results.zip").read("meta.json"))["data_id"])  # fmt: skip
    assert (folder / file_name(kind.tag, identity)).exists()


def test_the_recipe_outputs_find_every_study_of_a_vit_with_runs(tmp_path, monkeypatch):
    """Notebook 10 reads the runs of the ViT's channels, tokens and experts, and of the
    architectures beside it; a study with run 0 alone has no recipe to judge."""
    from sics.study.runs import studies_with_runs

    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    for folder in ("reference", "reference-experts", "reference-tokens", "resnet"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "results.zip").touch()
    for folder in ("reference", "reference-experts", "resnet"):
        (tmp_path / folder / "runs" / "1").mkdir(parents=True)
        (tmp_path / folder / "runs" / "1" / "results.zip").touch()
    assert studies_with_runs("reference") == ["reference", "reference-experts", "resnet"]
