"""ByteTrack's Kalman filter on (cx, cy, aspect, h) boxes.

This is the 8-D constant-velocity filter of DeepSORT as ByteTrack ships it (``yolox/tracker/kalman_filter.py``):
the state is ``(cx, cy, a, h, vcx, vcy, va, vh)`` with ``a = w / h``; the measurement is ``(cx, cy, a, h)``.
All noise standard deviations are proportional to the box height ``h`` (``std_weight_position = 1/20``,
``std_weight_velocity = 1/160``) except those of the aspect ratio, which are constants. The numbers below are the
official ones, verbatim:

- ``initiate``: std = ``[2 wp h, 2 wp h, 1e-2, 2 wp h, 10 wv h, 10 wv h, 1e-5, 10 wv h]``, h = measured height.
- ``predict``: process std = ``[wp h, wp h, 1e-2, wp h, wv h, wv h, 1e-5, wv h]``, h = ``mean[3]`` before the step.
- ``project`` / ``update``: measurement std = ``[wp h, wp h, 1e-1, wp h]``, h = ``mean[3]`` of the predicted state.

``multi_predict`` and ``multi_update`` are the batched forms used by the trackers; they compute the same products in
the same order as the single-track methods (the constant-velocity transition only adds blocks), so results agree
with the per-track calls to the last bit or within a few ulps.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["KalmanFilterXYAH"]


class KalmanFilterXYAH:
    """Constant-velocity Kalman filter over ``(cx, cy, a, h)`` boxes, exactly as ByteTrack uses it.

    Args:
        std_weight_position: position noise per pixel of box height (official: 1/20).
        std_weight_velocity: velocity noise per pixel of box height (official: 1/160).

    Example:
        >>> kf = KalmanFilterXYAH()
        >>> mean, cov = kf.initiate(np.array([50.0, 80.0, 0.5, 40.0]))
        >>> mean, cov = kf.predict(mean, cov)
        >>> mean, cov = kf.update(mean, cov, np.array([52.0, 80.0, 0.5, 40.0]))
        >>> mean.shape, cov.shape
        ((8,), (8, 8))
    """

    ndim = 4

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        self._std_weight_position = float(std_weight_position)
        self._std_weight_velocity = float(std_weight_velocity)
        self._motion_mat = np.eye(8)
        self._motion_mat[:4, 4:] = np.eye(4)
        self._update_mat = np.eye(4, 8)

    # ------------------------------------------------------------------ single track
    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Create a track state from one unassociated measurement.

        Args:
            measurement: box ``(cx, cy, a, h)``, shape (4,).

        Returns:
            ``(mean, covariance)`` of shapes (8,) and (8, 8); velocities start at zero.
        """
        measurement = np.asarray(measurement, dtype=np.float64)
        mean = np.r_[measurement, np.zeros_like(measurement)]
        h = measurement[3]
        wp, wv = self._std_weight_position, self._std_weight_velocity
        std = [2 * wp * h, 2 * wp * h, 1e-2, 2 * wp * h, 10 * wv * h, 10 * wv * h, 1e-5, 10 * wv * h]
        return mean, np.diag(np.square(std))

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the prediction step for one track.

        Args:
            mean: state, shape (8,).
            covariance: state covariance, shape (8, 8).

        Returns:
            Predicted ``(mean, covariance)``, shapes (8,) and (8, 8).
        """
        h = mean[3]
        wp, wv = self._std_weight_position, self._std_weight_velocity
        std = np.r_[[wp * h, wp * h, 1e-2, wp * h], [wv * h, wv * h, 1e-5, wv * h]]
        motion_cov = np.diag(np.square(std))
        mean = np.dot(mean, self._motion_mat.T)
        covariance = np.linalg.multi_dot((self._motion_mat, covariance, self._motion_mat.T)) + motion_cov
        return mean, covariance

    def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project a state into measurement space.

        Args:
            mean: state, shape (8,).
            covariance: state covariance, shape (8, 8).

        Returns:
            ``(projected_mean, projected_covariance)`` of shapes (4,) and (4, 4), measurement noise included.
        """
        h = mean[3]
        wp = self._std_weight_position
        innovation_cov = np.diag(np.square([wp * h, wp * h, 1e-1, wp * h]))
        mean = np.dot(self._update_mat, mean)
        covariance = np.linalg.multi_dot((self._update_mat, covariance, self._update_mat.T))
        return mean, covariance + innovation_cov

    def update(
        self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the correction step for one track (Cholesky solve, as the original).

        Args:
            mean: predicted state, shape (8,).
            covariance: predicted covariance, shape (8, 8).
            measurement: box ``(cx, cy, a, h)``, shape (4,).

        Returns:
            Corrected ``(mean, covariance)``, shapes (8,) and (8, 8).
        """
        projected_mean, projected_cov = self.project(mean, covariance)
        chol_factor, lower = scipy.linalg.cho_factor(projected_cov, lower=True, check_finite=False)
        kalman_gain = scipy.linalg.cho_solve(
            (chol_factor, lower), np.dot(covariance, self._update_mat.T).T, check_finite=False
        ).T
        innovation = np.asarray(measurement, dtype=np.float64) - projected_mean
        new_mean = mean + np.dot(innovation, kalman_gain.T)
        new_covariance = covariance - np.linalg.multi_dot((kalman_gain, projected_cov, kalman_gain.T))
        return new_mean, new_covariance

    # ------------------------------------------------------------------ batched
    def multi_initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`initiate`.

        Args:
            measurements: boxes ``(cx, cy, a, h)``, shape (N, 4).

        Returns:
            ``(mean, covariance)`` of shapes (N, 8) and (N, 8, 8).
        """
        measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        n = measurements.shape[0]
        mean = np.zeros((n, 8))
        mean[:, :4] = measurements
        h = measurements[:, 3]
        wp, wv = self._std_weight_position, self._std_weight_velocity
        var = np.empty((n, 8))
        var[:, 0] = var[:, 1] = var[:, 3] = np.square(2 * wp * h)
        var[:, 2] = 1e-2**2
        var[:, 4] = var[:, 5] = var[:, 7] = np.square(10 * wv * h)
        var[:, 6] = 1e-5**2
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = var
        return mean, cov

    def multi_predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`predict` for N tracks.

        The transition ``F = [[I, I], [0, I]]`` is applied as block sums (``F P`` adds the velocity rows to the
        position rows, ``(F P) F^T`` adds the velocity columns to the position columns), which is what the
        official ``np.dot`` with a 0/1 matrix computes, without N 8x8x8 products.

        Args:
            mean: states, shape (N, 8).
            covariance: covariances, shape (N, 8, 8).

        Returns:
            Predicted ``(mean, covariance)`` of shapes (N, 8) and (N, 8, 8) (new arrays).

        Example:
            >>> kf = KalmanFilterXYAH()
            >>> m, c = kf.multi_initiate(np.array([[10.0, 20.0, 0.5, 30.0], [5.0, 5.0, 1.0, 8.0]]))
            >>> kf.multi_predict(m, c)[1].shape
            (2, 8, 8)
        """
        mean = np.asarray(mean, dtype=np.float64)
        covariance = np.asarray(covariance, dtype=np.float64)
        h = mean[:, 3]
        wp, wv = self._std_weight_position, self._std_weight_velocity
        new_mean = mean.copy()
        new_mean[:, :4] += mean[:, 4:]
        fp = covariance.copy()
        fp[:, :4, :] += covariance[:, 4:, :]
        new_cov = fp.copy()
        new_cov[:, :, :4] += fp[:, :, 4:]
        pos_var = np.square(wp * h)
        vel_var = np.square(wv * h)
        for i in (0, 1, 3):
            new_cov[:, i, i] += pos_var
            new_cov[:, i + 4, i + 4] += vel_var
        new_cov[:, 2, 2] += 1e-2**2
        new_cov[:, 6, 6] += 1e-5**2
        return new_mean, new_cov

    def multi_project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`project`.

        Args:
            mean: states, shape (N, 8).
            covariance: covariances, shape (N, 8, 8).

        Returns:
            ``(projected_mean, projected_covariance)`` of shapes (N, 4) and (N, 4, 4).
        """
        mean = np.asarray(mean, dtype=np.float64)
        h = mean[:, 3]
        wp = self._std_weight_position
        proj_cov = np.array(covariance[:, :4, :4], dtype=np.float64, copy=True)
        pos_var = np.square(wp * h)
        proj_cov[:, 0, 0] += pos_var
        proj_cov[:, 1, 1] += pos_var
        proj_cov[:, 2, 2] += 1e-1**2
        proj_cov[:, 3, 3] += pos_var
        return mean[:, :4].copy(), proj_cov

    def multi_update(
        self, mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`update` (a 4x4 linear solve per track instead of a Cholesky factorisation).

        Args:
            mean: predicted states, shape (N, 8).
            covariance: predicted covariances, shape (N, 8, 8).
            measurements: boxes ``(cx, cy, a, h)``, shape (N, 4).

        Returns:
            Corrected ``(mean, covariance)`` of shapes (N, 8) and (N, 8, 8).
        """
        mean = np.asarray(mean, dtype=np.float64)
        covariance = np.asarray(covariance, dtype=np.float64)
        projected_mean, projected_cov = self.multi_project(mean, covariance)
        # K^T = S^-1 (H P); H selects the first four rows of P.
        gain_t = np.linalg.solve(projected_cov, covariance[:, :4, :])  # (N, 4, 8)
        innovation = np.asarray(measurements, dtype=np.float64) - projected_mean
        new_mean = mean + np.einsum("ni,nij->nj", innovation, gain_t)
        kalman_gain = gain_t.transpose(0, 2, 1)
        new_cov = covariance - kalman_gain @ projected_cov @ gain_t
        return new_mean, new_cov
