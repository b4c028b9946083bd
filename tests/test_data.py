import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorgan.method import data
from colorgan.method.config import ColorGANConfig, DataConfig
from colorgan.method.step import ColorGANStep
from colorgan.training.train import train
from tests.bad_images import make_corpus
from tests.conftest import tiny_config, write_images


def test_voc_split_matches_the_paper(tmp_path: Path):
    jpegs = tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages"
    jpegs.mkdir(parents=True)
    for i in range(data.VOC_NUM_IMAGES):  # listing needs no pixels: empty files are enough
        (jpegs / f"2008_{i:06d}.jpg").touch()
    train, test = data.voc_split(tmp_path / "VOCdevkit")
    assert (len(train), len(test)) == (15413, 1712)
    assert not set(train) & set(test)
    assert data.voc_split(tmp_path / "VOCdevkit" / "VOC2012") == (train, test)  # either root works, same split


def test_missing_voc_folder_says_what_to_place_where(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="VOC2012/JPEGImages"):
        data.voc_split(tmp_path)


def test_hash_split_is_independent_of_listing_order(tmp_path: Path):
    files = [tmp_path / f"{i}.jpg" for i in range(50)]
    assert data.hash_split(files, 5) == data.hash_split(list(reversed(files)), 5)


def test_folder_with_train_and_test_subfolders(image_folder: Path):
    train, test = data.folder_split(image_folder, 0.5)
    assert (len(train), len(test)) == (12, 4)


def test_flat_folder_is_split_by_ratio(tmp_path: Path):
    write_images(tmp_path / "flat", 20)
    train, test = data.folder_split(tmp_path / "flat", 0.25)
    assert (len(train), len(test)) == (15, 5)


def test_cache_decodes_once_and_skips_unreadable_files(tmp_path: Path, caplog):
    files = write_images(tmp_path / "imgs", 3)
    bad = tmp_path / "imgs" / "broken.jpg"
    bad.write_text("not an image")
    images = data.cached_images([*files, bad], 16, tmp_path / "cache")
    assert images.images.shape == (3, 3, 16, 16) and images.images.dtype == np.uint8
    assert len(images.skipped) == 1 and "broken.jpg" in images.skipped[0]
    assert "broken.jpg" in caplog.text
    again = data.cached_images([*files, bad], 16, tmp_path / "cache")
    assert isinstance(again.images, np.memmap)  # second call reads the cache
    np.testing.assert_array_equal(again.images, images.images)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_cache_is_rebuilt_when_a_file_changes(tmp_path: Path):
    files = write_images(tmp_path / "imgs", 2)
    first = np.array(data.cached_images(files, 8, tmp_path / "cache").images)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(files[0])
    second = data.cached_images(files, 8, tmp_path / "cache").images
    assert not np.array_equal(first[0], second[0])


def test_samples_are_offline_seeded_and_disjoint():
    train, test = data.sample_images(24, 32)
    assert train.images.shape == (24, 3, 32, 32)
    assert len(test) == len(data.SAMPLE_TEST) * (data.SAMPLE_TEST_CROPS + 1)
    assert not {n.split("#")[0] for n in train.names} & {n.split("#")[0] for n in test.names}
    again, _ = data.sample_images(24, 32)
    np.testing.assert_array_equal(train.images, again.images)


def test_load_split_records_the_source(tmp_path: Path, image_folder: Path):
    cfg = ColorGANConfig(data="folder", data_root=str(image_folder), image_size=16, progress=False)
    train, test, info = data.load_split(cfg, tmp_path / "cache")
    assert (info["source"], info["num_train"], info["num_test"]) == ("folder", 12, 4)
    record = data.split_record(train, test, info)
    assert len(record["train"]) == 12 and record["test"][0].startswith("img_")


def test_the_data_chapter_loads_a_folder_with_its_own_config(tmp_path: Path, image_folder: Path):
    # the data chapter holds a DataConfig, which has no training fields (a RunConfig-only field here broke it)
    cfg = DataConfig(data="folder", data_root=str(image_folder), image_size=16)
    train, test, info = data.load_split(cfg, tmp_path / "cache", progress=True)
    assert (len(train), len(test), info["source"]) == (12, 4, "folder")


def test_missing_data_root_fails_before_work(tmp_path: Path):
    with pytest.raises(ValueError, match="data_root: .*nope' is not an existing folder"):
        ColorGANConfig(data="folder", data_root=str(tmp_path / "nope"))
    (tmp_path / "gone").mkdir()
    cfg = ColorGANConfig(data="folder", data_root=str(tmp_path / "gone"))
    (tmp_path / "gone").rmdir()  # removed after the config was checked
    with pytest.raises(FileNotFoundError, match="data_root"):
        data.load_split(cfg, tmp_path / "cache")


def test_batches_resume_mid_stream():
    images = np.random.default_rng(0).integers(0, 255, (10, 3, 4, 4), dtype=np.uint8)
    full = list(itertools.islice(data.batches(images, 3, seed=7), 8))
    resumed = list(itertools.islice(data.batches(images, 3, seed=7, start_step=5), 3))
    for a, b in zip(full[5:], resumed):
        assert torch.equal(a, b)
    assert not torch.equal(full[0], list(itertools.islice(data.batches(images, 3, seed=8), 1))[0])


def test_batch_larger_than_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size: 16 is larger than the 3 training images"):
        next(data.batches(np.zeros((3, 3, 4, 4), np.uint8), 16, seed=0))


def test_exif_orientation_is_applied(tmp_path: Path):
    img = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert data.read_image(tmp_path / "rot.jpg").size == (20, 40)


def test_voc_mini_folder_split(voc_mini: Path, tmp_path: Path):
    train, test = data.folder_split(voc_mini, 0.1)
    assert (len(train), len(test)) == (2000, 250)
    images = data.cached_images(test[:8], 32, tmp_path / "cache")
    assert images.images.shape == (8, 3, 32, 32) and not images.skipped


def test_16_bit_gray_is_scaled_not_clipped(tmp_path: Path):
    ramp = np.linspace(0, 65535, 64).astype(np.uint16).reshape(4, 16)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    pixels = np.asarray(data.read_image(tmp_path / "gray16.png"))
    np.testing.assert_array_equal(pixels[..., 0], np.round(ramp / 257).astype(np.uint8))
    assert (pixels[..., 0] == pixels[..., 2]).all()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the bomb file is the point
def test_folder_dataset_skips_and_lists_unreadable_files(tmp_path: Path, caplog):
    cases = make_corpus(tmp_path / "corpus")
    refused = sorted(c.path.name for c in cases.values() if c.reason)
    cfg = tiny_config(tmp_path, data="folder", data_root=str(tmp_path / "corpus"), test_fraction=0.2,
                      num_steps=2, lambda_p=0.0, lambda_s=0.0)  # no VGG: this is about the data
    result = train(cfg, ColorGANStep, tmp_path / "cache")
    assert result.step == 2  # the unreadable files did not stop training
    split = json.loads((Path(cfg.run_dir) / "split.json").read_text())
    assert sorted(line.split(": ")[0].rsplit("/", 1)[-1] for line in split["skipped"]) == refused
    assert split["num_train"] + split["num_test"] == len(cases) - len(refused)
    assert json.loads((Path(cfg.run_dir) / "provenance.json").read_text())["num_skipped_files"] == len(refused)
    for name in refused:  # one warning per unreadable file, naming it
        assert sum(name in r.getMessage() for r in caplog.records if r.levelname == "WARNING") == 1


def test_file_name_that_is_not_utf8_does_not_break_the_split(tmp_path: Path):
    write_images(tmp_path / "imgs", 3)
    odd = Path(os.fsdecode(str(tmp_path / "imgs").encode() + b"/caf\xe9.png"))  # Latin-1 byte: not UTF-8
    Image.new("RGB", (12, 10), (90, 10, 200)).save(odd)
    train_files, test_files = data.folder_split(tmp_path / "imgs", 0.25)
    assert odd in train_files + test_files
    images = data.cached_images(train_files + test_files, 8, tmp_path / "cache")
    assert len(images) == 4 and not images.skipped


def test_damaged_cache_is_rebuilt(tmp_path: Path, caplog):
    files = write_images(tmp_path / "imgs", 2)
    first = np.array(data.cached_images(files, 8, tmp_path / "cache").images)
    (array_path,) = (tmp_path / "cache").glob("*.npy")
    array_path.write_bytes(array_path.read_bytes()[:100])  # torn, as after a full disk
    again = data.cached_images(files, 8, tmp_path / "cache")
    np.testing.assert_array_equal(again.images, first)
    assert "is unreadable" in caplog.text and "decoding the images again" in caplog.text


def test_ranks_split_the_global_batch_exactly():
    images = np.random.default_rng(1).integers(0, 255, (13, 3, 4, 4), dtype=np.uint8)
    one = list(itertools.islice(data.batches(images, 4, seed=3, start_step=2), 6))
    ranks = [list(itertools.islice(data.batches(images, 4, seed=3, start_step=2, rank=r, world_size=2), 6))
             for r in (0, 1)]
    for k, batch in enumerate(one):
        assert torch.equal(torch.cat([ranks[0][k], ranks[1][k]]), batch)
    with pytest.raises(ValueError, match="batch_size: 4 is not divisible by the 3 processes"):
        next(data.batches(images, 4, seed=0, world_size=3))


def test_flips_mirror_whole_images():
    images = np.random.default_rng(2).integers(0, 255, (6, 3, 4, 5), dtype=np.uint8)
    plain = next(data.batches(images, 6, seed=0, flip=False))
    flipped = next(data.batches(images, 6, seed=0))
    mirrored = [torch.equal(f, p.flip(-1)) for f, p in zip(flipped, plain)]
    assert all(m or torch.equal(f, p) for m, f, p in zip(mirrored, flipped, plain)) and any(mirrored)


def test_prefetch_keeps_order_raises_errors_and_stops():
    assert list(data.prefetch(iter(range(20)), depth=3)) == list(range(20))

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(data.prefetch(broken()))
    endless = data.prefetch(itertools.count())
    assert next(endless) == 0
    endless.close()  # must not hang on the producer thread
