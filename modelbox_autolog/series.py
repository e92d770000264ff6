"""Downsampling a metric series for a chart: at most ``max_points`` points that keep, for each
bucket of consecutive points, its minimum and its maximum, plus the first NaN and every
infinity, so spikes and divergence stay visible (min/max buckets: the shape a line chart
draws at that width is the same). Vectorised with numpy when it is installed (the ``ui``
extra brings it); a pure-Python path gives the same answer otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from .entities import MetricPoint, MetricSummary, SeriesSample

DEFAULT_MAX_POINTS = 2000
NO_EPOCH = -(2**63)


def sample_points(key: str, points: Sequence[MetricPoint], max_points: int = DEFAULT_MAX_POINTS) -> SeriesSample:
    """Downsample points already in step order (what ``Store.metrics`` returns)."""
    keep = _chosen_indices([p.value for p in points], max_points)
    chosen = [points[i] for i in keep]
    return SeriesSample(key, len(points), [p.step for p in chosen], [p.value for p in chosen],
                        [p.timestamp for p in chosen], [p.epoch for p in chosen])


def sample_columns(key: str, steps: bytes, values: bytes, times: bytes, epochs: bytes,
                   max_points: int = DEFAULT_MAX_POINTS) -> SeriesSample:
    """Downsample packed little-endian columns (int64 steps, float64 values and times, int64
    epochs with ``NO_EPOCH`` for none), as the SQL stores keep them; sorted by step here."""
    try:
        import numpy as np
    except ImportError:
        from array import array

        cols = [array(code) for code in "qddq"]
        for col, blob in zip(cols, (steps, values, times, epochs), strict=True):
            col.frombytes(blob)
        order = sorted(range(len(cols[0])), key=cols[0].__getitem__)
        points = [MetricPoint(cols[0][i], cols[1][i], cols[2][i], None if cols[3][i] == NO_EPOCH else cols[3][i]) for i in order]
        return sample_points(key, points, max_points)
    s = np.frombuffer(steps, "<i8")
    v = np.frombuffer(values, "<f8")
    t = np.frombuffer(times, "<f8")
    e = np.frombuffer(epochs, "<i8")
    if len(s) > 1 and not bool(np.all(s[1:] >= s[:-1])):
        order = np.argsort(s, kind="stable")
        s, v, t, e = s[order], v[order], t[order], e[order]
    keep = _chosen_indices_numpy(np, v, max_points)
    s, v, t, e = s[keep], v[keep], t[keep], e[keep]
    return SeriesSample(key, len(steps) // 8, s.tolist(), v.tolist(), t.tolist(),
                        [None if x == NO_EPOCH else x for x in e.tolist()])


def _bucket_count(n: int, max_points: int, has_nan: bool) -> int:
    per_bucket = 3 if has_nan else 2
    return max(1, (max(max_points, 3) - 2) // per_bucket)


def _chosen_indices(values: Sequence[float], max_points: int) -> list[int]:
    n = len(values)
    if n <= max_points:
        return list(range(n))
    has_nan = any(v != v for v in values)
    buckets = _bucket_count(n, max_points, has_nan)
    keep = {0, n - 1}
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if lo >= hi:
            continue
        finite = [(values[i], i) for i in range(lo, hi) if values[i] == values[i]]
        if finite:
            keep.add(min(finite)[1])
            keep.add(max(finite)[1])
        if has_nan:
            first_nan = next((i for i in range(lo, hi) if values[i] != values[i]), None)
            if first_nan is not None:
                keep.add(first_nan)
    return sorted(keep)


def _chosen_indices_numpy(np, values, max_points: int):
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    nan = np.isnan(values)
    has_nan = bool(nan.any())
    buckets = _bucket_count(n, max_points, has_nan)
    edges = (np.arange(buckets + 1) * n) // buckets
    starts = edges[:-1]
    sizes = np.diff(edges)
    starts, sizes = starts[sizes > 0], sizes[sizes > 0]
    width = int(sizes.max())
    # buckets as rows of a padded matrix: argmin/argmax per row in one call each
    index = starts[:, None] + np.arange(width)[None, :]
    valid = np.arange(width)[None, :] < sizes[:, None]
    index = np.where(valid, index, starts[:, None])
    rows = values[index]
    low = np.where(np.isnan(rows), np.inf, rows)
    high = np.where(np.isnan(rows), -np.inf, rows)
    chosen = [np.array([0, n - 1]), index[np.arange(len(starts)), low.argmin(axis=1)],
              index[np.arange(len(starts)), high.argmax(axis=1)]]
    if has_nan:
        nan_rows = nan[index] & valid
        has = nan_rows.any(axis=1)
        chosen.append(index[np.arange(len(starts)), nan_rows.argmax(axis=1)][has])
    return np.unique(np.concatenate(chosen))



def summarise(key: str, points: Sequence[MetricPoint]) -> MetricSummary:
    """The summary the SQL stores keep on ingest, computed from points (for other stores)."""
    if not points:
        return MetricSummary(key, None, None, None, None, None, 0)
    last = points[0]
    for point in points:
        if point.step >= last.step:
            last = point
    finite = [p.value for p in points if p.value == p.value]
    return MetricSummary(key, last.value, last.step, last.timestamp, min(finite) if finite else None,
                         max(finite) if finite else None, len(points))
