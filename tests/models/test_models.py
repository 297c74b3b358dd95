import pytest
import timm
import torch

from sics.config import PROFILES
from sics.errors import CheckpointError
from sics.models import build_model
from sics.units.mlp_channels import mlp_blocks


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


def jax_checkpoint(model) -> dict:
    """A timm ViT's weights in the layout of Google's original JAX `.npz` checkpoints (the inverse
    of timm's `_load_weights`): the format the paper's ImageNet ViT-Small was published in."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    D, H = model.embed_dim, model.blocks[0].attn.num_heads
    w = {"embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
         "embedding/bias": sd["patch_embed.proj.bias"], "cls": sd["cls_token"],
         "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
         "Transformer/encoder_norm/scale": sd["norm.weight"], "Transformer/encoder_norm/bias": sd["norm.bias"],
         "head/kernel": sd["head.weight"].T, "head/bias": sd["head.bias"]}  # fmt: skip
    for i in range(len(model.blocks)):
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        mha = p + "MultiHeadDotProductAttention_1/"
        for j, n in enumerate(("query", "key", "value")):
            w[f"{mha}{n}/kernel"] = sd[b + "attn.qkv.weight"][j * D : (j + 1) * D].T.reshape(D, H, D // H)
            w[f"{mha}{n}/bias"] = sd[b + "attn.qkv.bias"][j * D : (j + 1) * D].reshape(H, D // H)
        w[mha + "out/kernel"] = sd[b + "attn.proj.weight"].reshape(D, H, D // H).transpose(1, 2, 0)
        w[mha + "out/bias"] = sd[b + "attn.proj.bias"]
        for ln, name in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[f"{p}{ln}/scale"], w[f"{p}{ln}/bias"] = sd[f"{b}{name}.weight"], sd[f"{b}{name}.bias"]
        for r in range(2):
            w[f"{p}MlpBlock_3/Dense_{r}/kernel"] = sd[f"{b}mlp.fc{r + 1}.weight"].T
            w[f"{p}MlpBlock_3/Dense_{r}/bias"] = sd[f"{b}mlp.fc{r + 1}.bias"]
    return w


def test_paper_profile_loads_the_original_jax_npz_through_timms_own_loader(tmp_path):
    """timm turns `custom_load` off for a file overlay, which would send a JAX .npz to
    load_state_dict; the overlay turns it back on for .npz, so timm's npz loader reads it."""
    import numpy as np

    torch.manual_seed(2)
    src = timm.create_model("vit_small_patch16_224", pretrained=False)
    np.savez(tmp_path / "vit_small.npz", **jax_checkpoint(src))
    model = build_model(PROFILES["paper"], weights=tmp_path / "vit_small.npz")
    want, got = src.state_dict(), model.state_dict()
    same = [k for k in want if not k.startswith("head.")]
    assert len(same) == len(got) - 2 and all(torch.allclose(got[k], want[k], atol=1e-6) for k in same)
    assert model.head.out_features == 10


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
