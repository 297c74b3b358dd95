import pytest
import torch

from sics.config import PROFILES, LMConfig, ResNetConfig, ViTConfig, resolve_profile
from sics.errors import ParameterError
from sics.models.precision import EVAL_PRECISIONS
from sics.paths import figures_dir

VIT_SMALL = (12, 384, 6, 1536)  # depth, embed_dim, heads, MLP hidden H


def geometry(p):
    m = p.model
    return (m.depth, m.embed_dim, m.num_heads, m.mlp_hidden)


def test_profiles_are_data_with_the_protocol_geometry():
    for name in ("paper", "scratch"):
        assert geometry(PROFILES[name]) == VIT_SMALL, name
    paper, scratch = PROFILES["paper"], PROFILES["scratch"]
    assert (paper.model.img_size, paper.model.patch_size) == (224, 16) and paper.pretrained
    assert paper.model.model_name == "vit_small_patch16_224" and paper.model.mean == (0.5, 0.5, 0.5)
    assert (scratch.model.img_size, scratch.model.patch_size) == (32, 4) and not scratch.pretrained
    # the previews are smaller than ViT-Small in every dimension, and ci smaller than quick
    quick, ci = PROFILES["quick"], PROFILES["ci"]
    assert all(q < v for q, v in zip(geometry(quick), VIT_SMALL)), geometry(quick)
    assert all(c <= q for c, q in zip(geometry(ci), geometry(quick))), geometry(ci)
    assert ci.model.mlp_hidden < quick.model.mlp_hidden and ci.model.embed_dim < quick.model.embed_dim


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_has_a_consistent_model(name):
    p = PROFILES[name]
    m = p.model
    assert p.name == name and p.description
    if isinstance(m, ViTConfig):
        assert m.embed_dim % m.num_heads == 0 and m.img_size % m.patch_size == 0 and m.mlp_hidden >= 1
    elif isinstance(m, LMConfig):  # a byte-level LM: heads split the width, kv heads the heads
        assert m.d_model % m.n_head == 0 and m.n_head % m.n_kv_head == 0 and m.vocab_size == 256
        assert p.dataset == "text" and p.unit == "kv_positions" and m.attention == "eager"
    else:  # a CIFAR ResNet: Page's 9, or He's 6n + 2
        assert isinstance(m, ResNetConfig) and (m.depth == 9 or (m.depth - 2) % 6 == 0) and m.width >= 1
    assert p.epochs >= 1 and p.n_seeds >= 1
    assert all(0 <= S < 1 for S in (*p.sparsities, *(p.ablation_sparsities or ())))
    assert p.eval_precision in EVAL_PRECISIONS
    assert resolve_profile(name) is p


def test_parameter_beats_environment(monkeypatch):
    monkeypatch.setenv("SICS_PROFILE", "quick")
    assert resolve_profile("ci").name == "ci"
    assert resolve_profile("auto").name == "quick"
    assert resolve_profile(None).name == "quick"


def test_auto_says_what_it_chose(monkeypatch, capsys):
    monkeypatch.delenv("SICS_PROFILE")
    p = resolve_profile("auto")
    assert p.name == ("paper" if torch.cuda.is_available() else "quick")  # no weights in this figures dir
    assert f"profile 'auto' -> '{p.name}'" in capsys.readouterr().err


def test_auto_picks_reference_without_cuda_once_its_weights_are_committed(monkeypatch, capsys):
    monkeypatch.delenv("SICS_PROFILE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto").name == "quick"
    (figures_dir("reference") / "weights.safetensors").write_bytes(b"")
    assert resolve_profile("auto").name == "quick"  # weights without results: the study has not run
    (figures_dir("reference") / "results.zip").write_bytes(b"")
    assert resolve_profile("auto").name == "reference"
    assert "weights and results are committed" in capsys.readouterr().err


def test_auto_on_cuda_picks_paper_only_with_pretrained_weights_here_and_says_why(monkeypatch, capsys, tmp_path):
    import sics.config

    monkeypatch.delenv("SICS_PROFILE")
    import huggingface_hub

    cached = {}  # what the Hugging Face cache holds: nothing at first
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: cached.get((repo, name)))
    monkeypatch.setattr(sics.config, "cuda_available", lambda: True)  # a GPU machine, faked
    assert resolve_profile("auto").name == "scratch"
    err = capsys.readouterr().err
    assert "no pretrained ViT-Small weights" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("SICS_WEIGHTS", str(tmp_path / "missing.safetensors"))
    with pytest.raises(ParameterError, match="SICS_WEIGHTS names .* which is not a file"):
        resolve_profile("auto")  # a typo must not start a long from-scratch training
    (tmp_path / "vit.safetensors").write_bytes(b"x")
    monkeypatch.setenv("SICS_WEIGHTS", str(tmp_path / "vit.safetensors"))
    assert resolve_profile("auto").name == "paper"
    monkeypatch.delenv("SICS_WEIGHTS")
    assert resolve_profile("auto").name == "scratch"
    cached[("timm/vit_small_patch16_224.augreg_in21k_ft_in1k", "model.safetensors")] = str(tmp_path / "vit.safetensors")
    assert resolve_profile("auto").name == "paper"  # timm's copy in the hub cache


def test_unknown_profile_names_the_valid_ones():
    """The error lists exactly the accepted names: every listed name resolves, and every
    profile (whatever profiles get added later) is listed, with `auto`."""
    with pytest.raises(ParameterError, match=r"unknown profile 'nope'; valid: ") as err:
        resolve_profile("nope")
    listed = str(err.value).split("valid: ", 1)[1].split(", ")
    assert sorted(listed) == sorted([*PROFILES, "auto"])
    for name in listed:
        resolve_profile(name)  # raises if a listed name is not accepted


def test_overrides_are_checked_and_leave_the_profile_alone():
    epochs = PROFILES["ci"].epochs
    assert resolve_profile("ci", epochs=epochs + 2).epochs == epochs + 2
    assert PROFILES["ci"].epochs == resolve_profile("ci").epochs == epochs  # a copy was changed
    with pytest.raises(ParameterError, match="epochz"):
        resolve_profile("ci", epochz=3)


def test_the_fine_grid_runs_from_start_to_stop_inclusive():
    assert PROFILES["reference"].fine_sparsities() == [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    scratch = PROFILES["scratch"].fine_sparsities()
    assert len(scratch) == 21 and scratch[0] == 0.4 and scratch[-1] == 0.9 and 0.725 in scratch
