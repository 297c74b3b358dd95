import tarfile

import pytest
import torch

from sics.data import CLASSES, DeviceBatches, cutout, load_cifar10, random_crop
from sics.data import sources as data_mod
from sics.errors import DataError


def test_folder_and_archive_give_the_same_tensors(tiny_tree, tiny_archive):
    a = load_cifar10(tiny_tree)
    b = load_cifar10(tiny_archive)
    assert a.train_x.shape == (12 * 10, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (4 * 10, 3, 32, 32)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_y.bincount().tolist() == [12] * 10
    assert a.classes == CLASSES
    assert "tiny.tar.gz" in b.source and b.source_id.startswith("tar-")


def test_second_load_comes_from_the_tensor_cache(tiny_archive, monkeypatch):
    first = load_cifar10(tiny_archive)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data_mod, "_decode_archive", boom)
    again = load_cifar10(tiny_archive)
    assert torch.equal(first.train_x, again.train_x)


def test_environment_variable_names_the_source(tiny_tree, monkeypatch):
    monkeypatch.setenv("SICS_DATA", str(tiny_tree))
    assert len(load_cifar10().test_y) == 40


def test_missing_path_is_one_clear_line(tmp_path):
    with pytest.raises(DataError, match="does not exist: set SICS_DATA") as e:
        load_cifar10(tmp_path / "nowhere")
    assert "\n" not in str(e.value)


def test_corrupt_archive_is_reported(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not a gzip file" * 100)
    with pytest.raises(DataError, match="corrupt or not a tar.gz"):
        load_cifar10(bad)


def test_corrupt_image_inside_archive_is_reported(tmp_path, tiny_tree):
    bad = tmp_path / "badimg.tar.gz"
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG garbage")
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tiny_tree / "test", arcname="test")
        tar.add(junk, arcname="train/cat/0001.png")
    with pytest.raises(DataError, match="cannot decode image"):
        load_cifar10(bad)


def test_no_data_and_no_network_says_how_to_provide_it(monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match=r"download failed \(URLError\): set SICS_DATA") as e:
        load_cifar10(None)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="no CIFAR-10 data given: set SICS_DATA"):
        load_cifar10(None, download=False)


def test_subset_is_fixed_by_seed(tiny_tree):
    d = load_cifar10(tiny_tree)
    a, b = d.subset(30, 10, seed=0), d.subset(30, 10, seed=0)
    assert torch.equal(a.train_x, b.train_x) and len(a.test_y) == 10
    assert not torch.equal(a.train_y, d.subset(30, 10, seed=1).train_y)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, pad=2, generator=g)
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (2,), generator=g)
    dx = torch.randint(0, 5, (2,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8])


def test_cutout_zeroes_one_square_inside_each_image_and_nothing_else():
    x = torch.randn(50, 3, 32, 32) + 10.0  # no zeros of its own
    out = cutout(x, 8, generator=torch.Generator().manual_seed(0))
    zero = out == 0
    assert (zero.all(1) == zero.any(1)).all()  # every channel of a pixel, or none
    for img in zero[:, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert len(rows) == len(cols) == 8 and rows[-1] - rows[0] == 7 and cols[-1] - cols[0] == 7
        assert int(img.sum()) == 64  # a full square: never clipped at the border
    torch.testing.assert_close(out[~zero], x[~zero])
    assert len({tuple(map(int, z.nonzero()[0])) for z in zero[:, 0]}) > 10  # squares move


def test_batches_are_normalised_and_cover_the_split(tiny_tree):
    d = load_cifar10(tiny_tree)
    split = DeviceBatches(d.test_x, d.test_y, device=torch.device("cpu"), mean=(0.5,) * 3, std=(0.5,) * 3)
    xs, ys = zip(*split.batches(16))
    x = torch.cat(xs)
    assert torch.equal(torch.cat(ys), d.test_y)
    assert torch.allclose(x, d.test_x.float() / 127.5 - 1.0, atol=1e-6)
    up = DeviceBatches(d.test_x, d.test_y, device=torch.device("cpu"), mean=(0.5,) * 3, std=(0.5,) * 3, img_size=64)
    assert next(up.batches(4))[0].shape == (4, 3, 64, 64)
