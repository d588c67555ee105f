"""KalmanFilterXYAH: official ByteTrack/DeepSORT numbers, batched forms equal the single-track ones."""

from __future__ import annotations

import numpy as np
import pytest

from trackers.kalman import KalmanFilterXYAH

WP, WV = 1 / 20, 1 / 160


def _random_states(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    mean = np.column_stack(
        [
            rng.uniform(0, 1000, n),
            rng.uniform(0, 600, n),
            rng.uniform(0.2, 1.5, n),
            rng.uniform(20, 300, n),
            rng.normal(0, 3, (n, 4)) * np.array([1, 1, 0.01, 1]),
        ]
    )
    a = rng.normal(size=(n, 8, 8))
    cov = a @ a.transpose(0, 2, 1) + 8 * np.eye(8)
    return mean, cov


def test_initiate_matches_official_formula() -> None:
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([320.0, 240.0, 0.5, 100.0]))
    np.testing.assert_array_equal(mean, [320.0, 240.0, 0.5, 100.0, 0, 0, 0, 0])
    # std = [2*wp*h, 2*wp*h, 1e-2, 2*wp*h, 10*wv*h, 10*wv*h, 1e-5, 10*wv*h] with h = 100
    expected = np.diag([10.0**2, 10.0**2, 1e-4, 10.0**2, 6.25**2, 6.25**2, 1e-10, 6.25**2])
    np.testing.assert_allclose(cov, expected, rtol=1e-15, atol=0)


def test_predict_hand_computed() -> None:
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([320.0, 240.0, 0.5, 100.0]))
    mean[4:] = [2.0, -1.0, 0.0, 0.5]
    mean_p, cov_p = kf.predict(mean, cov)
    np.testing.assert_allclose(mean_p, [322.0, 239.0, 0.5, 100.5, 2.0, -1.0, 0.0, 0.5])
    # cx: P + Pvv + (wp h)^2 = 100 + 39.0625 + 25; cross term Pvv; vx: 39.0625 + (wv h)^2 = 39.0625 + 0.390625
    assert cov_p[0, 0] == pytest.approx(164.0625, rel=1e-14)
    assert cov_p[0, 4] == pytest.approx(39.0625, rel=1e-14)
    assert cov_p[4, 4] == pytest.approx(39.453125, rel=1e-14)
    assert cov_p[2, 2] == pytest.approx(1e-4 + 1e-10 + 1e-4, rel=1e-12)
    assert cov_p[6, 6] == pytest.approx(1e-10 + 1e-10, rel=1e-12)


def test_project_and_update_hand_computed() -> None:
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([320.0, 240.0, 0.5, 100.0]))
    proj_mean, proj_cov = kf.project(mean, cov)
    np.testing.assert_array_equal(proj_mean, [320.0, 240.0, 0.5, 100.0])
    # S = P + R: 100 + (wp h)^2 = 125 for positions, 1e-4 + 1e-2 for the aspect ratio
    np.testing.assert_allclose(np.diag(proj_cov), [125.0, 125.0, 1e-4 + 1e-2, 125.0], rtol=1e-14)
    new_mean, new_cov = kf.update(mean, cov, np.array([330.0, 240.0, 0.5, 100.0]))
    # gain on cx = 100 / 125 = 0.8; no cross-covariance yet, so velocities stay 0
    assert new_mean[0] == pytest.approx(328.0, rel=1e-14)
    np.testing.assert_allclose(new_mean[4:], 0.0, atol=1e-12)
    assert new_cov[0, 0] == pytest.approx(20.0, rel=1e-12)


def test_update_equals_naive_inverse_formula() -> None:
    rng = np.random.default_rng(0)
    kf = KalmanFilterXYAH()
    mean, cov = _random_states(rng, 1)
    z = mean[0, :4] + rng.normal(0, 2, 4) * np.array([1, 1, 0.01, 1])
    new_mean, new_cov = kf.update(mean[0], cov[0], z)
    h = mean[0, 3]
    r = np.diag(np.square([WP * h, WP * h, 1e-1, WP * h]))
    hmat = np.eye(4, 8)
    s = hmat @ cov[0] @ hmat.T + r
    k = cov[0] @ hmat.T @ np.linalg.inv(s)
    np.testing.assert_allclose(new_mean, mean[0] + k @ (z - mean[0, :4]), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(new_cov, cov[0] - k @ s @ k.T, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [pytest.param(0, id="empty"), pytest.param(1, id="one"), pytest.param(7, id="seven")])
def test_batched_forms_equal_single_track(n: int) -> None:
    rng = np.random.default_rng(1)
    kf = KalmanFilterXYAH()
    mean, cov = _random_states(rng, n)
    z = mean[:, :4] + rng.normal(0, 1, (n, 4)) * np.array([1, 1, 0.01, 1])

    m_init, c_init = kf.multi_initiate(z)
    m_pred, c_pred = kf.multi_predict(mean, cov)
    m_upd, c_upd = kf.multi_update(mean, cov, z)
    assert m_init.shape == (n, 8) and c_init.shape == (n, 8, 8)
    assert m_pred.shape == (n, 8) and c_pred.shape == (n, 8, 8)
    assert m_upd.shape == (n, 8) and c_upd.shape == (n, 8, 8)
    for i in range(n):
        mi, ci = kf.initiate(z[i])
        np.testing.assert_array_equal(m_init[i], mi)
        np.testing.assert_array_equal(c_init[i], ci)
        mp, cp = kf.predict(mean[i], cov[i])
        np.testing.assert_allclose(m_pred[i], mp, rtol=1e-15, atol=0)
        np.testing.assert_allclose(c_pred[i], cp, rtol=1e-14, atol=1e-12)
        mu, cu = kf.update(mean[i], cov[i], z[i])
        np.testing.assert_allclose(m_upd[i], mu, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(c_upd[i], cu, rtol=1e-10, atol=1e-10)


def test_multi_predict_does_not_modify_inputs() -> None:
    rng = np.random.default_rng(2)
    kf = KalmanFilterXYAH()
    mean, cov = _random_states(rng, 3)
    mean0, cov0 = mean.copy(), cov.copy()
    kf.multi_predict(mean, cov)
    kf.multi_update(mean, cov, mean[:, :4])
    np.testing.assert_array_equal(mean, mean0)
    np.testing.assert_array_equal(cov, cov0)


def test_covariance_stays_symmetric_positive_definite() -> None:
    kf = KalmanFilterXYAH()
    mean, cov = kf.multi_initiate(np.array([[100.0, 100.0, 0.4, 80.0]]))
    rng = np.random.default_rng(3)
    for _ in range(50):
        mean, cov = kf.multi_predict(mean, cov)
        z = mean[:, :4] + rng.normal(0, 1, (1, 4)) * np.array([1, 1, 0.001, 1])
        mean, cov = kf.multi_update(mean, cov, z)
    np.testing.assert_allclose(cov[0], cov[0].T, atol=1e-9)
    assert np.linalg.eigvalsh(cov[0]).min() > 0
