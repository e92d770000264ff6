"""Run search, summaries and downsampled series through a real ``modelbox server`` (grpc://)."""

from __future__ import annotations

import math

import pytest

import modelbox_autolog as mbx


def test_where_order_by_and_charts_over_grpc(server):
    mbx.autolog(backend=server.uri, frameworks=[], experiment="remote", capture_console=False)
    for i in range(6):
        with mbx.start_run(name=f"r{i}") as run:
            run.log_params({"lr": 10.0 ** -i, "opt": "adam" if i % 2 else "sgd"})
            for step in range(3000 if i == 0 else 3):
                run.log_metric("loss", math.nan if step == 1500 else 1.0 / (step + 1 + i), step=step)
    assert mbx.flush(30)
    client = mbx.Client(server.uri)
    runs = client.runs(where="params.lr < 0.05 and params.opt = 'adam'", order_by="metrics.loss desc")
    assert [r.name for r in runs] == ["r3", "r5"]
    assert client.count_runs(experiment="remote", where="metrics.loss >= 0.2") == 2
    assert [r.name for r in client.runs(order_by="params.lr", limit=2, offset=1)] == ["r4", "r3"]
    summaries = client.metric_summaries([r.id for r in runs])
    assert summaries[runs[0].id]["loss"].count == 3
    assert client.search_keys("remote") == {"params": ["lr", "opt"], "metrics": ["loss"], "tags": []}
    first = client.runs(where="name = 'r0'")[0]
    sample = client.metric_sample(first.id, "loss", max_points=500)
    assert sample.total == 3000 and len(sample.steps) <= 500
    assert sample.values[0] == 1.0 and any(math.isnan(v) for v in sample.values)  # the NaN is marked, not dropped
    with pytest.raises(mbx.SearchError) as info:
        client.runs(where="params.lr > 'x' or")
    assert info.value.position == 18
