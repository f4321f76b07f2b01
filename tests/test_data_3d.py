"""The dataset contract for volumes: validation, centres/boxes, padding, preparation, and the
2D-only steps that must refuse volumes."""

import jax
import numpy as np
import pytest
from skimage import exposure

from jaxseg import data
from jaxseg.data import augment as aug
from jaxseg.data import derive
from jaxseg.data import preprocess as pp


def _masks() -> np.ndarray:
    """[3,4,5,6] volumes (D,H,W): a slab, two opposite corner voxels, nothing."""
    m = np.zeros((3, 4, 5, 6), np.uint8)
    m[0, 1:3, 2:4, 1:5] = 1  # slices 1-2, rows 2-3, columns 1-4
    m[1, 0, 0, 0] = m[1, 3, 4, 5] = 1
    return m


def _arrays(n: int = 3) -> dict[str, np.ndarray]:
    masks = _masks()[:n, ..., None]
    images = np.random.default_rng(0).normal(size=(n, 4, 5, 6, 2))
    return derive.contract_arrays(images, masks, np.zeros(n), spacing=(3.0, 1.5, 1.5))


# --- derive ---------------------------------------------------------------------------------


def test_centres_of_volumes_are_x_y_z():
    center, has_object = derive.centers_from_masks(_masks()[..., None])
    assert center.dtype == np.float32 and center.shape == (3, 3)
    np.testing.assert_allclose(center, [[2.5, 2.5, 1.5], [2.5, 2.0, 1.5], [0, 0, 0]])
    np.testing.assert_array_equal(has_object, [True, True, False])


def test_boxes_of_volumes_are_x0_y0_z0_x1_y1_z1():
    box = derive.boxes_from_masks(_masks()[..., None])
    assert box.dtype == np.float32
    np.testing.assert_array_equal(box, [[1, 2, 1, 4, 3, 2], [0, 0, 0, 5, 4, 3], [0] * 6])


def test_volumes_without_a_channel_axis_need_rank_3():
    m = _masks()
    np.testing.assert_array_equal(
        derive.boxes_from_masks(m, rank=3), derive.boxes_from_masks(m[..., None])
    )
    np.testing.assert_array_equal(
        derive.centers_from_masks(m, rank=3)[0], derive.centers_from_masks(m[..., None])[0]
    )
    assert derive.centers_from_masks(m)[0].shape == (3, 2)  # [N,H,W,K] by default
    two_channels = np.stack([m, np.zeros_like(m)], axis=-1)
    np.testing.assert_array_equal(
        derive.boxes_from_masks(two_channels), derive.boxes_from_masks(m, rank=3)
    )
    with pytest.raises(ValueError, match=r"got shape \(3, 4, 5, 6, 1, 1\)"):
        derive.boxes_from_masks(m[..., None, None])
    with pytest.raises(ValueError, match="rank=3"):
        derive.centers_from_masks(m[0], rank=3)


def test_contract_arrays_for_volumes():
    a = _arrays()
    assert a["image"].shape == (3, 4, 5, 6, 2) and a["center"].shape == (3, 3)
    np.testing.assert_allclose(a["image"].mean(axis=(1, 2, 3, 4)), 0, atol=1e-6)
    np.testing.assert_allclose(a["image"].std(axis=(1, 2, 3, 4)), 1, atol=1e-5)
    np.testing.assert_array_equal(a["spacing"], [[3.0, 1.5, 1.5]] * 3)
    assert a["spacing"].dtype == np.float32
    raw = derive.contract_arrays(np.full((1, 4, 5, 6, 1), 40.0), _masks()[:1, ..., None], [0],
                                 normalize=False)  # fmt: skip
    assert "spacing" not in raw and (raw["image"] == 40).all()
    with pytest.raises(ValueError, match=r"\[N,D,H,W,C\]"):
        derive.contract_arrays(np.zeros((1, 1, 4, 5, 6, 1)), _masks()[:1], [0])


# --- check_arrays ---------------------------------------------------------------------------


def test_a_valid_volume_dataset_passes():
    ds = data.Dataset(_arrays(), ("kidney",), "vol")
    assert len(ds) == 3 and len(ds.subset(np.array([0, 2]))) == 2


F32 = np.float32
ZERO_SPACING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], F32)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(center=np.zeros((3, 2), F32)), r"'center' has shape \(3, 2\), expected \(3, 3\)"),
        (dict(box=np.zeros((3, 4), F32)), r"'box' has shape \(3, 4\), expected \(3, 6\)"),
        (dict(spacing=np.ones((3, 2), F32)), r"'spacing' has shape \(3, 2\), expected \(3, 3\)"),
        (dict(spacing=np.ones((3, 3))), "'spacing' has dtype float64"),
        (dict(spacing=ZERO_SPACING), "'spacing' must be positive"),
        (dict(spacing=np.full((3, 3), np.nan, F32)), "'spacing' must be positive and finite"),
        (
            dict(mask=np.zeros((3, 5, 5, 1), F32)),
            r"image \(3, 4, 5, 6, 2\) and mask \(3, 5, 5, 1\)",
        ),
        (dict(mask=np.zeros((3, 3, 5, 6, 1), F32)), r"and mask \(3, 3, 5, 6, 1\)"),
        (dict(image=np.zeros((3, 1, 4, 5, 6, 2), F32)), r"must be \[N,H,W,C\]"),
        (dict(label=np.zeros((3, 1), np.int32)), r"'label' has shape \(3, 1\), expected \(3,\)"),
    ],
)
def test_broken_volume_datasets_name_the_key(change, match):
    with pytest.raises(ValueError, match=match):
        data.check_arrays({**_arrays(), **change}, 1, "vol")


def test_2d_datasets_keep_their_widths_and_may_carry_spacing():
    masks = np.zeros((2, 8, 8, 1), np.float32)
    masks[:, 2:4, 3:6] = 1
    a = derive.contract_arrays(np.ones((2, 8, 8, 1)), masks, [0, 0], spacing=(0.5, 0.5))
    data.check_arrays(a, 1)
    np.testing.assert_array_equal(a["box"], [[3, 2, 5, 3]] * 2)
    with pytest.raises(ValueError, match=r"'center' has shape \(2, 3\), expected \(2, 2\)"):
        data.check_arrays({**a, "center": np.zeros((2, 3), np.float32)}, 1)


# --- padding and preparation ----------------------------------------------------------------


def test_pad_to_multiple_of_volumes_and_round_trip():
    x = np.random.default_rng(1).random((2, 5, 6, 7, 1)).astype(np.float32) + 1
    padded, pads = pp.pad_to_multiple(x, 4)
    assert padded.shape == (2, 8, 8, 8, 1) and pads == (1, 2, 1, 1, 0, 1)
    np.testing.assert_array_equal(padded[:, 1:6, 1:7, 0:7], x)
    assert padded.sum() == pytest.approx(x.sum(), rel=1e-6)
    np.testing.assert_array_equal(pp.unpad(padded, pads), x)
    with pytest.raises(ValueError, match="2 entries per spatial axis"):
        pp.unpad(padded, (1, 2, 1, 1))


def test_prepare_pads_volumes_and_shifts_centres_and_boxes():
    ds = data.Dataset(_arrays(), ("kidney",), "vol")
    out = data.prepare(ds, pad_multiple=8)  # D 4->8 (2, 2), H 5->8 (1, 2), W 6->8 (1, 1)
    a, b = ds.arrays, out.arrays
    assert b["image"].shape == (3, 8, 8, 8, 2) and b["mask"].shape == (3, 8, 8, 8, 1)
    np.testing.assert_array_equal(b["mask"][:, 2:6, 1:6, 1:7], a["mask"])
    np.testing.assert_allclose(b["center"], [[3.5, 3.5, 3.5], [3.5, 3.0, 3.5], [0, 0, 0]])
    np.testing.assert_array_equal(b["box"], [[2, 3, 3, 5, 4, 4], [1, 1, 2, 6, 5, 5], [0] * 6])
    np.testing.assert_array_equal(b["center"][:2], derive.centers_from_masks(b["mask"])[0][:2])
    np.testing.assert_array_equal(b["box"], derive.boxes_from_masks(b["mask"]))
    np.testing.assert_array_equal(b["spacing"], a["spacing"])


def test_prepare_runs_intensity_steps_on_volumes():
    hu = np.linspace(-1000, 1000, 3 * 4 * 5 * 6 * 2).reshape(3, 4, 5, 6, 2).astype(np.float32)
    arrays = {**_arrays(), "image": hu}
    out = data.prepare(data.Dataset(arrays, ("kidney",), "vol"), "ct_window:110:380,normalize")
    np.testing.assert_allclose(
        out.arrays["image"], derive.normalize_images(pp.ct_window(hu, 110, 380)), atol=1e-6
    )


# --- per-image preprocessing of volumes -----------------------------------------------------


def test_per_volume_statistics():
    rng = np.random.default_rng(2)
    v = rng.normal(5, 3, (2, 4, 6, 6, 1)).astype(np.float32)
    v[1] *= 10
    m = pp.minmax(v)
    np.testing.assert_allclose(m.min(axis=(1, 2, 3, 4)), 0)
    np.testing.assert_allclose(m.max(axis=(1, 2, 3, 4)), 1)
    np.testing.assert_allclose(pp.gamma(m, 2.0), m**2, rtol=1e-6)
    rgb = rng.random((1, 2, 3, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(pp.grayscale(rgb)[..., 0], rgb @ pp.LUMINANCE, rtol=1e-6)


def test_clahe_equalises_volumes_in_3d():
    v = np.random.default_rng(3).random((1, 8, 16, 16, 1)).astype(np.float32) * 0.1 + 0.5
    out = pp.clahe(v, kernel_size=8)
    assert out.shape == v.shape and out.dtype == np.float32
    by_hand = exposure.equalize_adapthist(pp.minmax(v)[0, ..., 0], kernel_size=8)  # 3D CLAHE
    np.testing.assert_allclose(out[0, ..., 0], by_hand, atol=1e-6)
    with pytest.raises(ValueError, match="W > 4"):
        pp.clahe(np.zeros((1, 8, 8, 3, 1)))


# --- augmentation is 2D only ----------------------------------------------------------------


def test_augment_refuses_volumes_unless_it_is_the_identity():
    batch = {"image": np.zeros((2, 4, 8, 8, 1), np.float32), "mask": np.zeros((2, 4, 8, 8, 1))}
    key = jax.random.key(0)
    for cfg in (dict(flip=True), dict(blur=1.0)):
        with pytest.raises(
            ValueError, match=r"augment is 2D only: 'image' has shape \(2, 4, 8, 8, 1\)"
        ):
            aug.augment(key, batch, cfg)
    out = aug.augment(key, batch, None)
    assert out["image"] is batch["image"] and out["mask"] is batch["mask"]
