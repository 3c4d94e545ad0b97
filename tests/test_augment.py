"""Augmentation schemes: shapes, ranges, determinism, batch independence, JSD, scheme names."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))

from robustify.augment import SCHEMES, TripletViews, make_views  # noqa: E402
from robustify.augment.augmix import js_divergence, jsd_loss  # noqa: E402
from robustify.augment.deepaugment import deepaugment_images  # noqa: E402
from robustify.augment.fractals import fractal_pictures  # noqa: E402
from robustify.augment.names import check_scheme  # noqa: E402
from robustify.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    # smooth random images (natural-ish statistics) so that ops like equalize/autocontrast act
    base = rng.integers(0, 256, size=(6, 8, 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)


def test_public_scheme_names():
    assert SCHEMES == ("augmix", "deepaugment", "pixmix", "augmix_deepaugment", "pixmix_augmix")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_make_views_shape_dtype_determinism_batch_independence(images, scheme):
    v = make_views(images, scheme, seed=3)
    assert v.shape == images.shape and v.dtype == np.uint8
    assert 0 <= v.min() and v.max() <= 255 and v.std() > 5
    assert (v != images).any(axis=(1, 2, 3)).mean() >= 0.5, "most views differ from their image"
    np.testing.assert_array_equal(v, make_views(images, scheme, seed=3))
    np.testing.assert_array_equal(v[2:5], make_views(images[2:5], scheme, seed=3))
    np.testing.assert_array_equal(v[::-1], make_views(images[::-1], scheme, seed=3))
    assert (v != make_views(images, scheme, seed=4)).any()


def test_make_views_uses_the_deepaugment_pool(images):
    pool = 255 - images
    np.testing.assert_array_equal(make_views(images, "deepaugment", 0, deepaugment_pool=pool), pool)
    with pytest.raises(DataError, match="deepaugment_pool"):
        make_views(images, "deepaugment", 0, deepaugment_pool=pool[:2])


def test_make_views_rejects_bad_input(images):
    with pytest.raises(DataError, match="uint8"):
        make_views(images.astype(np.float32), "augmix", 0)


def test_unknown_scheme_is_one_clear_line():
    with pytest.raises(ConfigError) as e:
        check_scheme("augmixx")
    msg = str(e.value)
    assert "\n" not in msg and "did you mean 'augmix'" in msg and "pixmix_augmix" in msg


def test_fractals_deterministic_and_varied():
    a = fractal_pictures(12, 32, seed=1)
    assert a.shape == (12, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, fractal_pictures.__wrapped__(12, 32, seed=1))
    assert (a != fractal_pictures(12, 32, seed=2)).any()
    assert len({im.tobytes() for im in a}) == 12
    assert all(im.reshape(-1, 3).std(0).max() > 10 for im in a), "each picture has structure, not a flat colour"


def test_deepaugment_deterministic_bounded(images):
    d = deepaugment_images(images, seed=0)
    assert d.shape == images.shape and d.dtype == np.uint8
    np.testing.assert_array_equal(d, deepaugment_images(images, seed=0))
    assert (d != deepaugment_images(images, seed=1)).any()
    diff = np.abs(d.astype(int) - images).mean(axis=(1, 2, 3))
    assert (diff > 1).all() and (diff < 100).all(), diff


@pytest.mark.parametrize("scheme,n_views", [("augmix", 3), ("deepaugment", 2), ("pixmix", 1),
                                            ("augmix_deepaugment", 3), ("pixmix_augmix", 3)])
def test_training_views(images, scheme, n_views):
    y = np.arange(len(images)) % 10
    tv = TripletViews(images, y, scheme, seed=0)
    v, labels = tv.batch(np.array([4, 1, 2]), epoch=0)
    assert v.shape == (n_views, 3, 32, 32, 3) and v.dtype == np.uint8
    np.testing.assert_array_equal(labels, y[[4, 1, 2]])
    again, _ = tv.batch(np.array([2, 4]), epoch=0)
    np.testing.assert_array_equal(again[:, 1], v[:, 0])  # same item, same epoch → same views
    other, _ = tv.batch(np.array([4, 1, 2]), epoch=1)
    assert (other != v).any()  # fresh views every epoch


def test_jsd_known_values():
    p1, p2, p3 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]])
    assert js_divergence(p3, p3, p3).item() == pytest.approx(0.0, abs=1e-7)
    # mixture = (0.5, 0.5): KL(p1‖m) = KL(p2‖m) = ln 2, KL(p3‖m) = 0
    assert js_divergence(p1, p2, p3).item() == pytest.approx(2 / 3 * math.log(2), rel=1e-5)


def test_jsd_loss_is_ce_plus_lambda_jsd():
    torch.manual_seed(0)
    logits, y = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert jsd_loss(12.0)(torch.cat([logits] * 3), y).item() == pytest.approx(ce.item(), abs=1e-5)
    l2, l3 = torch.randn(4, 10), torch.randn(4, 10)
    probs = [torch.softmax(t, 1) for t in (logits, l2, l3)]
    expected = ce + 12.0 * js_divergence(*probs)
    assert jsd_loss(12.0)(torch.cat([logits, l2, l3]), y).item() == pytest.approx(expected.item(), rel=1e-5)
