import pytest
import timm
import torch

from sics.config import PROFILES
from sics.errors import CheckpointError
from sics.models import build_model, mlp_blocks


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_paper_profile_loads_a_local_state_dict(tmp_path, suffix):
    """The `paper` loading path (timm pretrained from a file), with weights this test saves."""
    torch.manual_seed(1)
    src = timm.create_model("vit_small_patch16_224", pretrained=False)  # 1000-way ImageNet head
    path = tmp_path / f"vit_small{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(src.state_dict(), path)
    else:
        torch.save(src.state_dict(), path)
    model = build_model(PROFILES["paper"], weights=path)
    assert model.head.out_features == 10
    assert len(mlp_blocks(model)) == 12 and mlp_blocks(model)[0].fc1.out_features == 1536
    assert torch.equal(model.blocks[5].mlp.fc2.weight, src.blocks[5].mlp.fc2.weight)
    assert torch.equal(model.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert not torch.equal(model.head.weight[:10], src.head.weight[:10])  # new head, not copied


def test_npz_weights_go_to_timms_own_npz_loader(tmp_path, monkeypatch):
    """timm resets `custom_load` for a file overlay, which sent a JAX .npz to load_state_dict; the
    overlay turns it back on for .npz only. (No real .npz can be made here: the check is the
    configuration timm receives.)"""
    import sics.models

    seen = {}

    def fake_create_model(name, pretrained, pretrained_cfg_overlay=None, **kw):
        seen[pretrained_cfg_overlay["file"].rsplit(".", 1)[-1]] = pretrained_cfg_overlay["custom_load"]
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(sics.models.timm, "create_model", fake_create_model)
    for suffix in ("npz", "safetensors", "pth"):
        (tmp_path / f"w.{suffix}").write_bytes(b"x")
        build_model(PROFILES["paper"], weights=tmp_path / f"w.{suffix}")
    assert seen == {"npz": True, "safetensors": False, "pth": False}


def test_missing_weights_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model(PROFILES["paper"], weights=tmp_path / "none.pth")


def test_corrupt_weights_file_is_reported(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(CheckpointError, match="cannot load pretrained vit_small_patch16_224 weights from file"):
        build_model(PROFILES["paper"], weights=bad)


def test_offline_hub_says_how_to_give_weights():
    with pytest.raises(CheckpointError, match="SICS_WEIGHTS=path") as e:
        build_model(PROFILES["paper"])
    assert "\n" not in str(e.value)


def test_scratch_geometry():
    m = build_model(PROFILES["scratch"])
    assert m.patch_embed.num_patches == 64 and m.pos_embed.shape[1] == 65
    assert sum(mlp.fc1.out_features for mlp in mlp_blocks(m)) == 18_432
