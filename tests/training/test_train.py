import numpy as np
import pytest
import torch

from sics.config import resolve_profile
from sics.data import load_cifar10
from sics.errors import CheckpointError
from sics.models import build_model
from sics.training.checkpoints import train_or_load
from sics.training.loop import fine_tune
from sics.units.mlp_channels import sliced

CPU = torch.device("cpu")


def _profile(**kw):
    return resolve_profile("ci", batch_size=32, **kw)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.e2e  # trains a model end to end
def test_training_learns_and_is_cached(tiny_tree):
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=6, lr=3e-3)
    first = train_or_load(p, data, CPU, progress=False)
    assert first.trained_now and len(first.history) == 6
    assert first.history["train_loss"].iloc[-1] < first.history["train_loss"].iloc[0]
    assert first.test_accuracy > 0.2  # 10 classes told apart by colour: chance is 0.1
    again = train_or_load(p, data, CPU, progress=False)
    assert not again.trained_now and again.ckpt_id == first.ckpt_id
    assert _same_weights(first.model, again.model) and again.test_accuracy == first.test_accuracy
    other = train_or_load(_profile(epochs=1), data, CPU, progress=False)
    assert other.ckpt_id != first.ckpt_id  # the key follows the configuration


@pytest.mark.e2e  # trains a model end to end
def test_interrupted_training_resumes_where_it_stopped(tiny_tree, tmp_path, monkeypatch, capsys):
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=3, augment="crop_flip", drop_path=0.1)
    straight = train_or_load(p, data, CPU, progress=False)

    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "cache2"))

    def interrupt(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_or_load(p, data, CPU, progress=False, on_epoch_end=interrupt)
    epochs_seen = []
    resumed = train_or_load(p, data, CPU, progress=False, on_epoch_end=epochs_seen.append)
    assert "resuming" in capsys.readouterr().out
    assert epochs_seen == [3]  # only the epoch that was left
    assert _same_weights(straight.model, resumed.model)  # retraces the uninterrupted run
    assert resumed.history["epoch"].tolist() == [1, 2, 3]


def test_monitoring_epochs_use_the_profile_precision_and_the_last_full_precision(tiny_tree, monkeypatch):
    import sics.training.loop as train_module
    from sics.data import DeviceBatches
    from sics.models.evaluate import accuracy

    seen = []

    def spy(model, split, batch_size=1024, eval_precision="auto"):
        seen.append(eval_precision)
        return accuracy(model, split, batch_size, eval_precision)

    monkeypatch.setattr(train_module, "accuracy", spy)
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=3, eval_precision="bf16")
    t = train_or_load(p, data, CPU, progress=False)
    assert seen == ["bf16", "bf16", "fp32"]  # the model's own accuracy: fp32 on any CPU
    test = DeviceBatches(data.test_x, data.test_y, device=CPU, mean=p.model.mean, std=p.model.std, img_size=p.model.img_size)
    assert t.test_accuracy == accuracy(t.model, test, p.eval_batch_size, "fp32")


def test_corrupt_checkpoint_is_one_clear_line(tiny_tree):
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=1)
    done = train_or_load(p, data, CPU, progress=False)
    (done.ckpt_dir / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="is corrupt .*delete it to retrain") as e:
        train_or_load(p, data, CPU, progress=False)
    assert "\n" not in str(e.value)


def test_pretrained_profile_fine_tunes_from_a_local_weights_file(tiny_tree, tmp_path, monkeypatch):
    """The `paper` path end to end, shrunk: ImageNet-style weights saved here, resized input,
    the 0.5 normalisation, and the weights file as part of the checkpoint key."""
    import timm

    from sics.config import PROFILES

    torch.manual_seed(0)
    src = timm.create_model("vit_small_patch16_224", pretrained=False, depth=1)
    path = tmp_path / "in1k.pth"
    torch.save(src.state_dict(), path)
    p = PROFILES["paper"].replace(depth=1, img_size=64, epochs=1, batch_size=32)
    data = load_cifar10(tiny_tree)
    monkeypatch.setenv("SICS_WEIGHTS", str(path))
    run = train_or_load(p, data, CPU, progress=False)
    assert run.trained_now and run.model.pos_embed.shape[1] == 1 + (64 // 16) ** 2
    assert 0.0 <= run.test_accuracy <= 1.0
    monkeypatch.delenv("SICS_WEIGHTS")
    other = tmp_path / "other.pth"
    torch.save(src.state_dict(), other)
    assert train_or_load(p, data, CPU, weights=str(other), progress=False).ckpt_id != run.ckpt_id


@pytest.mark.e2e  # trains a model end to end
def test_a_damaged_resumable_checkpoint_starts_over_with_a_warning(tiny_tree, tmp_path, monkeypatch):
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=2)
    straight = train_or_load(p, data, CPU, progress=False)
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "cache2"))

    def interrupt(epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_or_load(p, data, CPU, progress=False, on_epoch_end=interrupt)
    state = tmp_path / "cache2" / "checkpoints" / straight.ckpt_id / "state.pt"
    state.write_bytes(state.read_bytes()[:200])  # truncated
    with pytest.warns(UserWarning, match="resumable checkpoint .* is damaged .*training from the start"):
        again = train_or_load(p, data, CPU, progress=False)
    assert again.history["epoch"].tolist() == [1, 2]
    assert _same_weights(straight.model, again.model)  # a fresh start, as if never interrupted


@pytest.mark.e2e  # trains a model end to end
def test_recovery_depends_only_on_model_masks_steps_and_seed(tiny_tree):
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=2, drop_path=0.1)  # drop-path: a stochastic layer while training
    fresh = train_or_load(p, data, CPU, progress=False)
    loaded = train_or_load(p, data, CPU, progress=False)
    assert fresh.trained_now and not loaded.trained_now
    masks = [np.arange(p.model.mlp_hidden) % 3 != 0] * p.model.depth

    def recover(model, seed=0):
        return fine_tune(sliced(model, masks), p, data, CPU, steps=3, seed=seed)

    # the same model whether trained just now or loaded, so the same recovery
    assert _same_weights(recover(fresh.model), recover(loaded.model))
    # a model with drop-path on: its draws come from the seed, not from the global RNG
    torch.manual_seed(0)
    stochastic = build_model(p)
    first = recover(stochastic)
    torch.rand(17)  # advance the global RNG
    assert _same_weights(first, recover(stochastic))
    model, before = sliced(stochastic, masks), torch.get_rng_state()
    fine_tune(model, p, data, CPU, steps=1)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left as it was
    assert not _same_weights(first, recover(stochastic, seed=1))


@pytest.mark.e2e  # trains a model end to end
def test_a_failing_compile_falls_back_to_eager_and_says_so(tiny_tree, monkeypatch, capsys):
    """An Inductor failure on the device must not end a GPU run: the first compiled step fails,
    training goes on in eager mode, and the model is the one eager training makes."""
    data = load_cifar10(tiny_tree)
    p = _profile(epochs=2, drop_path=0.1)  # random draws in the forward: the retry must redo them
    eager = train_or_load(p, data, CPU, progress=False, compile=False)

    def broken(model, **kw):
        def step(x):  # runs the forward (drop-path draws, BN would update) and only then fails
            model(x)
            raise RuntimeError("inductor: no C++ compiler\nmore detail")

        return step

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setenv("SICS_CACHE", str(eager.ckpt_dir.parent.parent / "other"))
    fallen = train_or_load(p, data, CPU, progress=False, compile=True)
    assert "torch.compile failed (RuntimeError: inductor: no C++ compiler); training in eager mode" in capsys.readouterr().err
    assert fallen.trained_now and _same_weights(fallen.model, eager.model)


def test_sics_compile_switches_compiling_on_and_off(monkeypatch):
    from sics.errors import ParameterError
    from sics.training.loop import compile_wanted

    assert not compile_wanted(CPU) and compile_wanted(torch.device("cuda"))
    monkeypatch.setenv("SICS_COMPILE", "1")
    assert compile_wanted(CPU)
    monkeypatch.setenv("SICS_COMPILE", "0")
    assert not compile_wanted(torch.device("cuda"))
    monkeypatch.setenv("SICS_COMPILE", "yes")
    with pytest.raises(ParameterError, match="SICS_COMPILE must be 0 or 1"):
        compile_wanted(CPU)


@pytest.mark.e2e  # trains a model end to end
def test_checkpoints_are_written_every_n_epochs_or_minutes(tiny_tree, monkeypatch, tmp_path):
    import sics.training.loop as train_module

    saved = []
    real = train_module.atomic_write

    def spy(path, write):
        if path.name == "state.pt":
            saved.append(path)
        return real(path, write)

    monkeypatch.setattr(train_module, "atomic_write", spy)
    data = load_cifar10(tiny_tree)
    train_or_load(_profile(epochs=5, ckpt_every=2), data, CPU, progress=False)
    assert len(saved) == 3  # epochs 2, 4 and the last
    saved.clear()
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "a"))  # (the checkpoint fields change no id)
    train_or_load(_profile(epochs=5, ckpt_every=100, ckpt_minutes=0.0), data, CPU, progress=False)
    assert len(saved) == 5  # every epoch: the minutes are always up
    saved.clear()
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "b"))
    train_or_load(_profile(epochs=5, ckpt_every=100, ckpt_minutes=60.0), data, CPU, progress=False)
    assert len(saved) == 1  # only the last
