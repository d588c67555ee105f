"""Photographs from installed wheels and their fixed train / held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from mmtrack_corr.photos import HELDOUT_PHOTOS, PHOTO_SETS, TRAIN_PHOTOS, load_photo, photo_path, resolve_photos


def test_split_is_disjoint_and_nonempty() -> None:
    assert len(TRAIN_PHOTOS) >= 10 and len(HELDOUT_PHOTOS) >= 5
    assert not set(TRAIN_PHOTOS) & set(HELDOUT_PHOTOS)
    assert len(set(TRAIN_PHOTOS)) == len(TRAIN_PHOTOS) and len(set(HELDOUT_PHOTOS)) == len(HELDOUT_PHOTOS)
    assert PHOTO_SETS == {"train": TRAIN_PHOTOS, "heldout": HELDOUT_PHOTOS}


def test_stereo_pair_on_one_side() -> None:
    # the two motorcycle images show one scene; splitting them would leak the held-out scene into training
    assert ("motorcycle_left" in HELDOUT_PHOTOS) == ("motorcycle_right" in HELDOUT_PHOTOS)


@pytest.mark.parametrize("name", TRAIN_PHOTOS + HELDOUT_PHOTOS)
def test_every_photo_loads_as_bgr(name: str) -> None:
    image = load_photo(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 150
    assert image.std() > 10  # real texture, not a flat or blank image
    assert not image.flags.writeable
    assert load_photo(name) is image  # cached


def test_photo_is_read_only() -> None:
    with pytest.raises(ValueError):
        load_photo("coffee")[0, 0, 0] = 1


def test_photo_path_points_into_the_installed_packages() -> None:
    assert photo_path("china").replace("\\", "/").endswith("sklearn/datasets/images/china.jpg")
    assert photo_path("rocket").replace("\\", "/").endswith("skimage/data/rocket.jpg")


def test_resolve_photos() -> None:
    assert resolve_photos("train") == TRAIN_PHOTOS
    assert resolve_photos("heldout") == HELDOUT_PHOTOS
    assert resolve_photos(["coffee", "brick"]) == ("coffee", "brick")


@pytest.mark.parametrize(
    ("photos", "error", "match"),
    [
        pytest.param("test", ValueError, "photos: expected 'train', 'heldout'", id="unknown_set"),
        pytest.param(["coffee", "lena"], ValueError, r"unknown photo name\(s\) \['lena'\]", id="unknown_name"),
        pytest.param([], ValueError, "at least one", id="empty"),
        pytest.param([1, 2], TypeError, "sequence of photo names", id="not_str"),
        pytest.param(3, TypeError, "photos: expected", id="int"),
    ],
)
def test_resolve_photos_errors(photos: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        resolve_photos(photos)  # type: ignore[arg-type]


def test_load_photo_errors() -> None:
    with pytest.raises(ValueError, match="name: expected one of"):
        load_photo("lena")
    with pytest.raises(TypeError, match="name: expected a photo name"):
        load_photo(3)  # type: ignore[arg-type]
