"""Downsampling of a series to a coarser resolution with LTTB (tsdownsample), gaps kept as NaN."""

from __future__ import annotations

import numpy as np
from tsdownsample import LTTBDownsampler

_LTTB = LTTBDownsampler()


def lttb_length(points: int, frequency: int, resolution: int) -> int:
    """How many points `lttb` returns for `points` values: what a query's answer will hold, known before reading."""
    if resolution <= frequency or points < 3:
        return points
    n_out = points * frequency // resolution
    return points if n_out < 3 or n_out >= points else n_out


def lttb(data: np.ndarray, frequency: int, resolution: int) -> tuple[np.ndarray, int]:
    """Downsample `data` (one value per `frequency` seconds) to about one per `resolution` seconds.

    Returns the data unchanged with its own frequency when no downsampling is asked for or possible
    (cc-metric-store's rule). NaN gaps are left out of the triangle selection and the points picked
    keep their values, so a gap only reappears where no neighbouring point exists."""
    if resolution <= frequency or len(data) < 3:
        return data, frequency
    n_out = len(data) * frequency // resolution
    if n_out < 3 or n_out >= len(data):
        return data, frequency
    finite = np.isfinite(data)
    if finite.all():
        picked = _LTTB.downsample(data.astype(np.float64, copy=False), n_out=n_out)
        return data[picked], resolution
    # Pick among the finite points, then place them into n_out equal buckets by position so the
    # output keeps a regular time axis; empty buckets stay NaN.
    idx = np.nonzero(finite)[0]
    out = np.full(n_out, np.nan, dtype=data.dtype)
    if len(idx) == 0:
        return out, resolution
    if len(idx) >= 3 and len(idx) > n_out:
        idx = idx[_LTTB.downsample(idx.astype(np.float64), data[idx].astype(np.float64), n_out=n_out)]
    buckets = np.minimum(idx * n_out // len(data), n_out - 1)
    out[buckets] = data[idx]
    return out, resolution
