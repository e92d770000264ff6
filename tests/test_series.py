"""Downsampling keeps each bucket's extremes, NaN and infinities; numpy and pure Python agree."""

from __future__ import annotations

import math
import random

import pytest

from modelbox_autolog import series
from modelbox_autolog.backends.sqlite import pack_points
from modelbox_autolog.entities import MetricPoint


def make_points(n: int) -> list[MetricPoint]:
    rng = random.Random(7)
    values = [math.sin(i / 500) + rng.random() * 0.1 for i in range(n)]
    values[12345] = 40.0  # a spike
    values[23456] = -40.0
    values[34567] = math.nan
    values[45678] = math.inf
    return [MetricPoint(i, v, 1000.0 + i, i // 1000) for i, v in enumerate(values)]


def columns(points):
    _, _, _, steps, values, times, epochs = pack_points([(None, None, p.value, p.step, p.timestamp, p.epoch) for p in points])
    return steps, values, times, epochs


def test_downsampling_keeps_extremes_nan_and_inf():
    points = make_points(50_000)
    sample = series.sample_columns("loss", *columns(points), max_points=2000)
    assert sample.total == 50_000 and len(sample.steps) <= 2000 and sample.downsampled
    assert 40.0 in sample.values and -40.0 in sample.values and math.inf in sample.values
    assert any(math.isnan(v) for v in sample.values)
    assert sample.steps[0] == 0 and sample.steps[-1] == 49_999 and sample.steps == sorted(sample.steps)
    assert sample.epochs[-1] == 49 and sample.timestamps[0] == 1000.0


def test_numpy_and_pure_python_agree(monkeypatch):
    points = make_points(50_000)
    with_numpy = series.sample_columns("loss", *columns(points), max_points=999)
    pure = series.sample_points("loss", points, max_points=999)
    assert with_numpy.steps == pure.steps


def test_short_series_unchanged_and_unsorted_chunks_sorted():
    points = make_points(50_000)[:100]
    shuffled = points[50:] + points[:50]
    sample = series.sample_columns("x", *columns(shuffled), max_points=2000)
    assert sample.steps == list(range(100)) and not sample.downsampled


@pytest.mark.parametrize("n", [1, 2, 2001, 4003])
def test_sizes(n):
    sample = series.sample_points("x", make_points(50_000)[:n], max_points=2000)
    assert len(sample.steps) <= 2000 and sample.steps[0] == 0 and sample.steps[-1] == n - 1
