import pytest
import torch

from sics.config import PROFILES, resolve_profile
from sics.errors import ParameterError


def test_profiles_are_data_with_the_protocol_geometry():
    for name in ("paper", "scratch"):
        p = PROFILES[name]
        assert (p.depth, p.embed_dim, p.num_heads, p.mlp_hidden) == (12, 384, 6, 1536)
    assert PROFILES["paper"].mean == (0.5, 0.5, 0.5) and PROFILES["paper"].pretrained
    assert (PROFILES["scratch"].img_size, PROFILES["scratch"].patch_size) == (32, 4)
    assert PROFILES["quick"].mlp_hidden < 1536 and PROFILES["ci"].mlp_hidden < PROFILES["quick"].mlp_hidden


def test_parameter_beats_environment(monkeypatch):
    monkeypatch.setenv("SICS_PROFILE", "quick")
    assert resolve_profile("ci").name == "ci"
    assert resolve_profile("auto").name == "quick"
    assert resolve_profile(None).name == "quick"


def test_auto_says_what_it_chose(monkeypatch, capsys):
    monkeypatch.delenv("SICS_PROFILE")
    p = resolve_profile("auto")
    assert p.name == ("paper" if torch.cuda.is_available() else "quick")
    assert f"profile 'auto' -> '{p.name}'" in capsys.readouterr().err


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ParameterError, match=r"unknown profile 'nope'; valid: paper, scratch, quick, ci"):
        resolve_profile("nope")


def test_overrides_are_checked():
    assert resolve_profile("ci", epochs=3).epochs == 3
    with pytest.raises(ParameterError, match="epochz"):
        resolve_profile("ci", epochz=3)
