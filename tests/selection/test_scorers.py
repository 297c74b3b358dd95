import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sics.errors import ParameterError
from sics.selection.complexity import kappa_hat
from sics.selection.groups import magnitude_rank
from sics.selection.scorers import (
    NINE,
    SCORERS,
    BlockStats,
    baselines,
    by_kappa,
    check_scorers,
    feature_classes,
    get_scorer,
    kappa0,
    modulate,
    non_monotone,
    register,
    score_blocks,
)
from sics.selection.select import keep_count, mask_hash, select, top_k


def synthetic_blocks(H: int, n_blocks: int = 3, seed: int = 0) -> list[BlockStats]:
    """Blocks whose magnitudes look like a trained MLP's (log-normal, distinct)."""
    rng = np.random.default_rng(seed)
    return [BlockStats.from_magnitudes(i, rng.lognormal(0.0, 0.3, H)) for i in range(n_blocks)]


def test_registry_has_the_protocol_names_and_classes():
    kappas = {n: SCORERS[n].kappa for n in NINE}
    assert kappas == {
        "magnitude": "0", "magnitude_sq": "0", "log_magnitude": "0",
        "logistic_smooth": "1", "tent_smooth": "1", "sine_smooth": "1",
        "logistic_raw": "2", "tent_raw": "2", "fake_nonmonotone": "control",
    }  # fmt: skip
    assert {"gradient", "bump", "random"} <= set(SCORERS)
    assert get_scorer("logistic_smooth").params() == dict(
        lam=0.2, sigma_e=0.1, aligned=True, axis="rank", r=3.99, width=1 / 50, burn_in=1000)
    assert get_scorer("fake_nonmonotone").params()["F"] == 20.0
    assert get_scorer("bump").params() == dict(lam=0.2, sigma_b=0.05)
    assert all(sc.version == 1 for sc in SCORERS.values())


def test_groupings_are_read_from_each_scorers_kappa():
    assert feature_classes() == list(NINE)  # the nine, as registered at import, in table order
    assert kappa0() == ["magnitude", "magnitude_sq", "log_magnitude"]
    assert by_kappa(1) == by_kappa("1") == ["logistic_smooth", "tent_smooth", "sine_smooth"]
    assert non_monotone() == [*by_kappa("1"), *by_kappa("2")]
    assert by_kappa("2") == ["logistic_raw", "tent_raw"]
    assert by_kappa("control") == ["fake_nonmonotone"]
    assert baselines() == ["gradient", "bump", "random"]
    assert {get_scorer(n).role for n in feature_classes()} == {"feature"}
    assert {get_scorer(n).role for n in baselines()} == {"baseline"}
    with pytest.raises(ParameterError, match=r"unknown κ class 3; valid: 0, 1, 2, control, base"):
        by_kappa(3)


@pytest.fixture
def extra_scorers():
    """A κ=1 feature scorer (version 2) and a baseline registered for one test, then removed."""

    @register("_test_wave", kappa=1, stochastic=True, version=2)
    def wave(block, S, rng, *, lam: float = 0.3):
        phi = np.cos(2 * np.pi * (rng.uniform() + 1.5 * np.arange(block.H) / block.H))
        return modulate(block, S, phi, lam=lam)

    @register("_test_inverse", kappa="baseline")
    def inverse(block, S, rng):
        return -block.m

    yield "_test_wave", "_test_inverse"
    SCORERS.pop("_test_wave", None)
    SCORERS.pop("_test_inverse", None)


def test_a_newly_registered_scorer_joins_its_groups(extra_scorers):
    wave, inverse = extra_scorers
    assert feature_classes() == [*NINE, wave]  # registration order kept
    assert by_kappa("1")[-1] == wave and wave in non_monotone()
    assert wave not in kappa0() and wave not in baselines()
    assert baselines()[-1] == inverse and inverse not in feature_classes()
    assert get_scorer(wave).version == 2 and get_scorer(inverse).version == 1
    assert get_scorer(wave).role == "feature" and get_scorer(inverse).role == "baseline"


def test_registration_checks_kappa_and_version():
    with pytest.raises(ParameterError, match=r"unknown κ class 3;"):
        register("_test_bad", kappa=3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="version must be an integer >= 1"):
            register("_test_bad", kappa=1, version=bad)
    assert "_test_bad" not in SCORERS


def test_bad_names_and_parameters_are_named():
    with pytest.raises(ParameterError, match=r"unknown scorer 'nope'; valid: magnitude, magnitude_sq"):
        check_scorers(["magnitude", "nope"])
    with pytest.raises(ParameterError, match="scorer list is empty"):
        check_scorers([])
    with pytest.raises(ParameterError, match=r"has no parameter\(s\) \['lambda'\]"):
        get_scorer("tent_raw").params({"lambda": 0.1})


@settings(max_examples=60, deadline=None)
@given(
    ints=st.lists(st.integers(1, 10_000), min_size=8, max_size=200),  # ties allowed
    S=st.floats(0.0, 0.95),
    transform=st.sampled_from([np.log, np.sqrt, np.exp, lambda x: x**3, lambda x: 5 * x - 7, np.arctan]),
)
def test_any_increasing_transform_of_magnitude_gives_the_same_mask(ints, S, transform):
    m = np.array(ints, dtype=np.float64) / 1000.0
    block = [BlockStats.from_magnitudes(0, m)]
    ref = select(score_blocks(block, "magnitude", S), S)[0]
    assert np.array_equal(select([transform(m)], S)[0], ref)
    assert np.array_equal(select([block[0].u], S)[0], ref)  # the rank keeps the same channels
    for name in ("magnitude_sq", "log_magnitude"):
        assert np.array_equal(select(score_blocks(block, name, S), S)[0], ref)


@pytest.mark.parametrize(
    "S, H, k",
    [
        (0.5, 5, 3),  # 2.5: halves round up (Python's round would give 2)
        (0.75, 10, 3),  # 2.5 again
        (0.25, 2, 2),  # 1.5
        (0.7, 512, 154),  # 153.6
        (0.7, 10, 3),  # (1 - 0.7) * 10 = 3.0000000000000004 in floats
        (0.55, 30, 14),  # 13.5, computed as 13.499999999999998: still rounds up
        (0.07, 250, 233),  # 232.5, computed as 232.49999999999997
        (0.0, 7, 7),
        (0.0, 1, 1),
        (0.5, 1, 1),  # 0.5 rounds up: a one-channel block keeps its channel
        (0.999, 10, 0),
        (0.5, 1536, 768), (0.6, 1536, 614), (0.7, 1536, 461), (0.8, 1536, 307),
    ],
)  # fmt: skip
def test_keep_count_known_values(S, H, k):
    assert keep_count(S, H) == k
    assert int(select([np.arange(float(H))], S)[0].sum()) == k


def test_global_keep_count_is_taken_over_all_channels():
    scores = [np.arange(5.0), np.arange(5.0) + 10, np.arange(5.0) + 20]
    masks = select(scores, 0.5, "global")  # 15 channels: 7.5 rounds up to 8
    assert [int(m.sum()) for m in masks] == [0, 3, 5]
    assert select(scores, 0.5, "block")[0].tolist() == [False, False, True, True, True]


@settings(max_examples=60, deadline=None)
@given(
    H=st.integers(1, 300),
    S=st.lists(st.floats(0.0, 0.999), min_size=2, max_size=5),
    levels=st.sampled_from([3, 1_000_000]),  # few levels: many tied scores
    seed=st.integers(0, 2**32 - 1),
    allocation=st.sampled_from(["block", "global"]),
)
def test_masks_are_nested_and_keep_exactly_the_top_scores(H, S, levels, seed, allocation):
    rng = np.random.default_rng(seed)
    scores = [rng.integers(0, levels, H).astype(np.float64) for _ in range(3)]
    previous = None
    for s in sorted(S):
        masks = select(scores, s, allocation)
        units = masks if allocation == "block" else [np.concatenate(masks)]
        values = scores if allocation == "block" else [np.concatenate(scores)]
        for m, v in zip(units, values):
            assert abs(m.sum() - (1 - s) * len(v)) <= 0.5 + 1e-9  # a rounding of (1 - S) n
            if m.any() and (~m).any():
                lo, hi = v[m].min(), v[~m].max()
                assert lo >= hi  # nothing pruned outscores something kept
                if lo == hi:  # a tie across the cut: the lower index is kept
                    tied = v == lo
                    assert np.flatnonzero(m & tied).max() < np.flatnonzero(~m & tied).min()
        if previous is not None:  # a higher S only removes channels
            assert all(np.all(m <= p) for m, p in zip(masks, previous))
        previous = masks


def test_protocol_keep_counts_for_vit_small():
    s = np.random.default_rng(0).permutation(1536).astype(np.float64)
    for S, k in zip((0.5, 0.6, 0.7, 0.8), (768, 614, 461, 307)):
        kept = select([s], S)[0]
        assert np.array_equal(np.sort(s[kept]), np.arange(1536 - k, 1536.0))  # the k largest


def test_ties_break_by_channel_index():
    assert top_k(np.array([1.0, 2.0, 2.0, 2.0, 0.0]), 2).tolist() == [False, True, True, False, False]


def test_tied_magnitudes_rank_like_top_k():
    """Among equal m the lower index ranks higher, so the rank (u, and every scorer built on it)
    keeps exactly magnitude's channels even when the cut falls inside a group of ties (here
    dead channels with m = 0 among them, where log m = -inf)."""
    m = np.array([2.0, 1.0, 2.0, 3.0, 1.0, 2.0, 0.0, 2.0, 1.0, 3.0, 0.0, 2.0])
    block = BlockStats.from_magnitudes(0, m)
    assert magnitude_rank(m).tolist() == [9, 4, 8, 11, 3, 7, 1, 6, 2, 10, 0, 5]
    assert np.array_equal(block.rank, magnitude_rank(m))
    scores = {name: score_blocks([block], name, 0.5)[0] for name in kappa0()}
    scores["u"] = block.u
    for k in range(len(m) + 1):
        ref = top_k(m, k)
        for name, s in scores.items():
            assert np.array_equal(top_k(s, k), ref), (name, k)


# the published criteria read statistics the synthetic blocks lack; tests/selection/test_criteria.py has theirs
OWN_STATS = ("criterion", "matched")


@pytest.mark.parametrize("name", [n for n in SCORERS if SCORERS[n].stochastic and n != "gradient"
                                  and SCORERS[n].kappa not in OWN_STATS])  # fmt: skip
def test_seeds_reproduce_and_differ(name):
    blocks = synthetic_blocks(512)
    a = select(score_blocks(blocks, name, 0.7, seed=0), 0.7)
    b = select(score_blocks(blocks, name, 0.7, seed=0), 0.7)
    c = select(score_blocks(blocks, name, 0.7, seed=1), 0.7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("H", [512, 1536])
@pytest.mark.parametrize("S", [0.5, 0.6, 0.7, 0.8])
def test_measured_kappa_matches_assigned_kappa_for_the_nine(H, S):
    blocks = synthetic_blocks(H)
    for name in NINE:
        for seed in range(3):
            k_hat, _ = kappa_hat(score_blocks(blocks, name, S, seed=seed), blocks)
            kappa = get_scorer(name).kappa
            if kappa == "control":
                assert k_hat >= 1, name  # non-monotone, whatever its frequency
            else:
                assert str(k_hat) == kappa, (name, S, seed)


def test_non_monotone_classes_change_a_visible_share_of_the_selection():
    """On average over seeds; a single seed (a sine phase rising through the cut) can leave
    magnitude's selection nearly unchanged."""
    blocks = synthetic_blocks(1536)
    for S in (0.5, 0.6, 0.7, 0.8):
        ref = select(score_blocks(blocks, "magnitude", S), S)
        for name in [n for n in NINE if get_scorer(n).kappa != "0"]:
            shared = []
            for seed in range(5):
                masks = select(score_blocks(blocks, name, S, seed=seed), S)
                shared.append(sum((m & r).sum() for m, r in zip(masks, ref)) / sum(r.sum() for r in ref))
            assert np.mean(shared) < 0.97, (name, S, shared)


def test_warns_when_parameters_make_a_class_monotone():
    blocks = synthetic_blocks(512)
    with pytest.warns(UserWarning, match="monotone in rank"):
        # λ/σ_E = 0.5 < √e and λ·max|φ'| = 0.05·4π < 1: u + λEφ stays increasing
        score_blocks(blocks, "sine_smooth", 0.7, params={"lam": 0.05})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_blocks(blocks, "sine_smooth", 0.7)  # defaults: λ/σ_E = 2, non-monotone


def test_index_axis_carries_no_magnitude_information():
    blocks = synthetic_blocks(1536)
    by_rank = score_blocks(blocks, "sine_smooth", 0.7, params={"axis": "rank"})
    by_index = score_blocks(blocks, "sine_smooth", 0.7, params={"axis": "index"})
    assert kappa_hat(by_rank, blocks)[0] == 1 and kappa_hat(by_index, blocks)[0] == 2


def _per_group(scorer_name: str):
    """The registered scorer, called once per group (its batched path switched off)."""
    scorer = get_scorer(scorer_name)
    return type(scorer)(**{**scorer.__dict__, "batched": False})


@pytest.mark.parametrize("name", sorted(n for n in SCORERS if SCORERS[n].kappa not in OWN_STATS))
def test_batched_scoring_of_equal_groups_gives_what_one_call_per_group_gives(name, monkeypatch):
    """Token pruning scores 10,000 groups per row in one call: bit for bit the per-group scores."""
    from sics.selection.groups import BlockStats, with_taylor

    rng = np.random.default_rng(7)
    m = rng.lognormal(0.0, 0.5, (40, 64))
    m[3, :10] = m[3, 0]  # tied magnitudes: the rank's tie rule must hold in the stack too
    groups = with_taylor(BlockStats.groups(m), list(rng.random((40, 64))))
    plain = with_taylor([BlockStats.from_magnitudes(i, row) for i, row in enumerate(m)], list(groups.whole.taylor))
    assert all(np.array_equal(a.rank, b.rank) for a, b in zip(groups, plain))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched = score_blocks(groups, name, 0.7, seed=5)
        monkeypatch.setitem(SCORERS, name, _per_group(name))
        one_by_one = score_blocks(plain, name, 0.7, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(batched, one_by_one, strict=True))
    assert mask_hash(select(batched, 0.7)) == mask_hash(select(one_by_one, 0.7))
    assert select(batched, 0.7)[3].sum() == keep_count(0.7, 64)


@given(st.integers(1, 40), st.integers(0, 12), st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_top_k_of_a_stack_keeps_what_top_k_keeps_row_by_row_ties_included(n, k, seed):
    from sics.selection.select import top_k_rows

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (7, n)).astype(float)  # many ties
    k = min(k, n)
    expected = np.stack([top_k(row, k) for row in scores])
    assert np.array_equal(top_k_rows(scores, k), expected)


def test_a_stack_hashes_overlaps_and_kappa_hats_as_its_groups_do():
    """Hash, overlap, Jaccard and κ̂ of equal-size groups, computed on their stack, equal the
    group-by-group definitions."""
    import hashlib

    from sics.selection.complexity import kappa_hat_block
    from sics.selection.groups import BlockStats
    from sics.selection.select import jaccard, overlap

    rng = np.random.default_rng(3)
    m = rng.lognormal(0.0, 0.5, (30, 64))
    groups = BlockStats.groups(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = score_blocks(groups, "logistic_raw", 0.6, seed=2)
    masks, ref = select(scores, 0.6), select([g.m for g in groups], 0.6)
    a, b = [np.array(x) for x in masks], [np.array(x) for x in ref]
    h = hashlib.sha1()
    for mk in a:
        h.update(np.packbits(mk).tobytes())
        h.update(len(mk).to_bytes(4, "little"))
    assert mask_hash(masks) == h.hexdigest()[:12]
    inter = sum(int((x & y).sum()) for x, y in zip(a, b))
    assert overlap(masks, ref) == inter / sum(int(x.sum()) for x in a)
    assert jaccard(masks, ref) == inter / sum(int((x | y).sum()) for x, y in zip(a, b))
    per_group = [kappa_hat_block(x, g) for x, g in zip(scores, groups)]
    k, share = kappa_hat(scores, groups)
    counts = {j: sum(1 for i, _ in per_group if i == j) for j in {i for i, _ in per_group}}
    assert k == max(j for j, c in counts.items() if c == max(counts.values()))
    assert abs(share - np.mean([sh for _, sh in per_group])) < 1e-12


def test_stacked_edge_cases_match_the_per_group_definitions():
    """Groups of one unit, a group with -inf scores, NaN scores: the stack's κ̂ and top-k are
    the per-group ones, and a Stacked list cannot be changed behind its stack."""
    from sics.selection.complexity import _kappa_hat_stack, kappa_hat_block
    from sics.selection.groups import BlockStats, Stacked
    from sics.selection.select import top_k_rows

    ones = BlockStats.groups(np.arange(1.0, 6.0)[:, None])  # five groups of one unit
    assert kappa_hat([g.m for g in ones], ones) == (0, 0.0)
    rng = np.random.default_rng(0)
    groups = BlockStats.groups(rng.lognormal(0.0, 0.5, (6, 64)))
    scores = rng.random((6, 64))
    scores[2, 5] = -np.inf  # one group with an infinite score must not spoil the others' fits
    per_group = [kappa_hat_block(s, g) for s, g in zip(scores, groups)]
    stacked = _kappa_hat_stack(scores, BlockStats.stack(groups))
    assert [k for k, _ in stacked] == [k for k, _ in per_group]
    assert np.allclose([sh for _, sh in stacked], [sh for _, sh in per_group], equal_nan=True, atol=1e-12)
    assert all(sh > 0 for i, (_, sh) in enumerate(stacked) if i != 2)  # the finite groups keep theirs
    nan_rows = np.array([[np.nan, 1, 2, np.inf, -np.inf, 2], [3, 1, 2, 2, 0, 5]], dtype=float)
    assert np.array_equal(top_k_rows(nan_rows, 1), np.stack([top_k(r, 1) for r in nan_rows]))
    with pytest.raises(TypeError, match="read-only"):
        groups[0] = groups[1]
    assert isinstance(groups, Stacked) and not isinstance(list(groups), Stacked)
