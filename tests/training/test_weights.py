"""Committed weights: a trained model exported as safetensors is used instead of training, is
checked against its hash and recipe, and RETRAIN=1 trains anyway."""

import json

import pytest
import torch

from sics.config import resolve_profile
from sics.data import load_cifar10
from sics.errors import CheckpointError
from sics.training.checkpoints import export_weights, train_or_load
from sics.training.weights import paths


@pytest.fixture
def trained(tiny_tree):
    p = resolve_profile("ci", epochs=1)
    data = load_cifar10(str(tiny_tree)).subset(p.n_train, p.n_test)
    t = train_or_load(p, data, torch.device("cpu"), progress=False)
    return p, data, t


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_exported_weights_are_used_instead_of_training(trained, monkeypatch, tmp_path):
    p, data, t = trained
    digest = export_weights(t, p, data.source)
    wpath, mpath = paths(p.name)
    assert len(digest) == 64 and json.loads(mpath.read_text())["sha256"] == digest
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "empty-cache"))  # no checkpoint to fall back on
    loaded = train_or_load(p, data, torch.device("cpu"), progress=False)
    assert not loaded.trained_now and loaded.weights_sha256 == digest
    assert same_weights(loaded.model, t.model) and loaded.test_accuracy == t.test_accuracy
    assert loaded.ckpt_id == t.ckpt_id and len(loaded.history) == len(t.history)
    monkeypatch.setenv("SICS_RETRAIN", "1")
    again = train_or_load(p, data, torch.device("cpu"), progress=False)
    assert again.trained_now and again.weights_sha256 is None
    assert again.ckpt_id == t.ckpt_id + "-retrained"  # its caches and results never mix with the committed ones


def test_a_changed_file_or_recipe_is_a_one_line_error(trained):
    p, data, t = trained
    export_weights(t, p, data.source)
    wpath, _ = paths(p.name)
    with pytest.raises(CheckpointError, match="trained with other settings \\(lr\\)"):
        train_or_load(p.replace(lr=p.lr * 2), data, torch.device("cpu"), progress=False)
    wpath.write_bytes(wpath.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        train_or_load(p, data, torch.device("cpu"), progress=False)


def test_bf16_shards_stay_under_their_size_load_as_the_rounded_model_and_are_checked(trained, monkeypatch, tmp_path):
    from sics.data import DeviceBatches
    from sics.models.evaluate import accuracy
    from sics.training.weights import files

    p, data, t = trained
    test = DeviceBatches(data.test_x, data.test_y, device=torch.device("cpu"), mean=p.model.mean, std=p.model.std,
                         img_size=p.model.img_size)  # fmt: skip
    digest = export_weights(t, p, data.source, dtype="bf16", shard_mb=0.03, test=test)
    meta = json.loads(paths(p.name)[1].read_text())
    shards = files(p.name)[1:]
    assert len(shards) >= 2 and sorted(s.name for s in shards) == sorted(meta["files"])
    assert all(s.stat().st_size <= 0.03e6 + 1024 for s in shards)  # the limit, plus the header
    assert not paths(p.name)[0].exists() and meta["sha256"] == digest and meta["dtype"] == "bf16"
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "empty-cache"))
    loaded = train_or_load(p, data, torch.device("cpu"), progress=False)
    assert not loaded.trained_now and loaded.weights_sha256 == digest and loaded.ckpt_id == t.ckpt_id + "-bf16"
    want = {k: v.to(torch.bfloat16).float() for k, v in t.model.state_dict().items()}
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert not all(torch.equal(got[k], t.model.state_dict()[k]) for k in want)  # rounded indeed
    assert loaded.test_accuracy == accuracy(loaded.model, test, p.eval_batch_size, "fp32")
    assert meta["trained_test_accuracy"] == t.test_accuracy
    shards[-1].write_bytes(shards[-1].read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        train_or_load(p, data, torch.device("cpu"), progress=False)
    shards[-1].unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        train_or_load(p, data, torch.device("cpu"), progress=False)
