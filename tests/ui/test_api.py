"""The HTTP API of a real ``modelbox ui`` process (and of ``modelbox server --http-port``), with an HTTP client."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

import modelbox_autolog as mbx

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def http(ui):
    with httpx.Client(base_url=ui.url, timeout=30) as client:
        client.get("/")  # the page sets the CSRF cookie
        yield client


def write_headers(http) -> dict[str, str]:
    return {"x-csrf-token": http.cookies["mbx_csrf"], "content-type": "application/json"}


def test_openapi_describes_every_route(http):
    doc = http.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/metrics/{key}", "/api/v1/models/{model_id}",
                 "/api/v1/models/{model_id}/finalize", "/api/v1/changes/stream", "/api/v1/runs/{run_id}/artifacts/{artifact_id}/content"):
        assert path in doc["paths"], path
    where = [p for p in doc["paths"]["/api/v1/runs"]["get"]["parameters"] if p["name"] == "where"]
    assert where and "params.lr" in where[0]["description"]


def test_search_sort_page_and_columns(http, ui_store):
    client = mbx.Client(ui_store)
    expected = [r.id for r in client.runs(experiment="ui-test", where="params.C >= 0.5", order_by="params.C desc")]
    body = http.get("/api/v1/runs", params={"experiment": "ui-test", "where": "params.C >= 0.5", "order_by": "params.C desc",
                                            "count": "1", "params": "C", "metrics": "training_score"}).json()
    assert [r["id"] for r in body["runs"]] == expected and body["total"] == len(expected) >= 3
    assert all(set(r["params"]) <= {"C"} for r in body["runs"])
    page = http.get("/api/v1/runs", params={"experiment": "ui-test", "limit": 2, "offset": 1, "count": 1}).json()
    assert len(page["runs"]) == 2 and page["total"] > 3
    top = http.get("/api/v1/runs", params={"experiment": "ui-test", "top_level": 1, "limit": 200}).json()["runs"]
    assert all(r["parent_run_id"] is None for r in top)
    parent = [r for r in top if r["children"]]
    assert parent and parent[0]["children"] == 3  # the grid search's candidates fold under it


def test_experiment_summaries_count_runs_and_name_the_latest(http, ui_store):
    client = mbx.Client(ui_store)
    summaries = http.get("/api/v1/experiments/summary").json()["summaries"]
    assert set(summaries) == {e.id for e in client.experiments()}
    (experiment,) = [e for e in client.experiments() if e.name == "ui-test"]
    summary = summaries[experiment.id]
    runs = client.runs(experiment="ui-test")
    assert summary["runs"] == len([r for r in runs if r.parent_run_id is None]) > 3
    assert summary["failed"] == len([r for r in runs if r.status in ("failed", "killed")]) >= 1  # the "broken" run
    assert summary["running"] == len([r for r in runs if r.status == "running"])
    assert summary["latest"]["id"] == runs[0].id and summary["latest"]["start_time"] == runs[0].start_time
    assert "/api/v1/experiments/summary" in http.get("/api/v1/openapi.json").json()["paths"]


def test_invalid_where_is_a_400_with_position_and_unknown_ids_404(http):
    r = http.get("/api/v1/runs", params={"where": "params.C > 0.1 and and"})
    assert r.status_code == 400
    assert r.json()["position"] == 19 and "expected a condition" in r.json()["message"]
    r = http.get("/api/v1/runs", params={"where": "metrics.loss > 'x'", "top_level": "1"})
    assert r.status_code == 400 and r.json()["position"] == 15  # points into what the user typed
    r = http.get("/api/v1/runs/feedbeeffeedbeef")
    assert r.status_code == 404 and r.json()["id"] == "feedbeeffeedbeef" and "feedbeeffeedbeef" in r.json()["message"]
    assert http.get("/api/v1/models/0123456789abcdef").status_code == 404
    assert http.get("/api/v1/runs", params={"limit": "lots"}).status_code == 400


def test_run_page_calls_and_downsampled_series(http, ui_store):
    client = mbx.Client(ui_store)
    run = client.runs(where="params.note like '%script%'")[0]
    doc = http.get(f"/api/v1/runs/{run.id}").json()
    assert doc["name"] == run.name and doc["metrics"]["final_auc"]["count"] == 1 and doc["env"]["python"]
    series = http.get(f"/api/v1/runs/{run.id}/metrics/loss", params={"max_points": 10}).json()
    assert series["total"] == 30 and len(series["steps"]) <= 10 and "NaN" in series["values"]
    events = http.get(f"/api/v1/runs/{run.id}/events").json()["events"]
    assert isinstance(events, list)
    console = http.get(f"/api/v1/runs/{run.id}/console").json()
    assert "printed to the console" in console["text"]
    fitted = client.runs(experiment="ui-test", where="params.C = 10")[0]
    assert http.get(f"/api/v1/runs/{fitted.id}/events").json()["events"][0]["name"] == "fit"
    lineage = http.get(f"/api/v1/runs/{fitted.id}/lineage").json()
    assert lineage["models"] and lineage["models"][0]["framework"] == "sklearn"


def test_files_are_served_with_safe_types(http, ui_store):
    run = mbx.Client(ui_store).runs(where="params.note like '%script%'")[0]
    artifacts = {a["name"]: a for a in http.get(f"/api/v1/runs/{run.id}/artifacts").json()["artifacts"]}
    html = http.get(artifacts["report.html"]["content_url"])
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in html.headers["content-security-policy"] and html.headers["x-content-type-options"] == "nosniff"
    svg = http.get(artifacts["plot.svg"]["content_url"])
    assert svg.headers["content-type"] == "image/svg+xml" and "sandbox" in svg.headers["content-security-policy"]
    text = http.get(artifacts["notes.txt"]["content_url"])
    assert text.headers["content-type"].startswith("text/plain") and text.text.startswith("<b>plain")
    head = http.get(artifacts["report.html"]["content_url"], params={"head": 10, "download": 1})
    assert len(head.content) == 10 and head.headers["content-disposition"].startswith("attachment;")
    model = mbx.Client(ui_store).models()[0]
    body = http.get(f"/api/v1/models/{model.id}").json()
    download = http.get(body["files"][0]["download_url"])
    assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment;")
    assert len(download.content) == body["files"][0]["bytes"]


def test_writes_need_csrf_and_same_origin(http, ui_store):
    model = [m for m in mbx.Client(ui_store).models() if m.status == "draft"][-1]
    url = f"/api/v1/models/{model.id}"
    assert http.patch(url, json={"labels": {"stage": "x"}}).status_code == 403  # no X-CSRF-Token
    headers = write_headers(http)
    assert http.patch(url, json={"labels": {"stage": "x"}}, headers={**headers, "origin": "http://evil.example"}).status_code == 403
    assert http.patch(url, json={"labels": {"stage": "x"}}, headers={**headers, "x-csrf-token": "guess"}).status_code == 403
    r = http.patch(url, json={"labels": {"stage": "staging"}, "metadata": {"auc": 0.9}}, headers=headers)
    assert r.status_code == 200 and r.json()["labels"]["stage"] == "staging"
    assert mbx.Client(ui_store).model(model.id).metadata["auc"] == 0.9
    assert http.patch(url, content=b"[1]", headers=headers).status_code == 400
    assert http.patch(url, json={"labels": {"stage": 3}}, headers=headers).status_code == 400


def test_host_check_against_dns_rebinding(ui):
    assert httpx.get(ui.url + "/api/v1/experiments", headers={"host": "evil.example"}).status_code == 421
    assert httpx.get(f"http://localhost:{ui.port}/api/v1/experiments").status_code == 200


def test_change_feed_streams_server_sent_events(http, ui_store):
    model = [m for m in mbx.Client(ui_store).models() if m.status == "draft"][0]
    received: list[dict] = []

    def listen() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=20) as client, client.stream("GET", "/api/v1/changes/stream") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data:"):
                    received.append(json.loads(line[5:]))
                    if any(c["object_id"] == model.id for c in received):
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(1.0)  # the stream is open and the hub polls
    assert http.patch(f"/api/v1/models/{model.id}", json={"labels": {"live": "yes"}}, headers=write_headers(http)).status_code == 200
    thread.join(15)
    assert any(c["object_id"] == model.id and c["object_type"] == "model" for c in received)


def test_unreachable_store_answers_503_and_the_page_still_serves(ui_factory):
    from tests.ui.conftest import free_port

    down = ui_factory(f"grpc://127.0.0.1:{free_port()}")
    r = httpx.get(down.url + "/api/v1/experiments", timeout=60)
    assert r.status_code == 503 and r.json()["error"] == "store unreachable"
    assert httpx.get(down.url + "/").status_code == 200
    assert httpx.get(down.url + "/api/v1/health", timeout=60).json()["ok"] is False


def test_token_protects_pages_and_api(ui_store, ui_factory):
    secured = ui_factory(ui_store, "--token", "s3cret-token")
    assert httpx.get(secured.url + "/api/v1/runs").status_code == 401
    assert httpx.get(secured.url + "/", follow_redirects=False).headers["location"] == "/login"
    assert httpx.get(secured.url + "/api/v1/runs", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    with httpx.Client(base_url=secured.url) as browser_like:
        assert browser_like.post("/login", data={"token": "wrong"}).headers["location"] == "/login?failed=1"
        browser_like.post("/login", data={"token": "s3cret-token"})
        assert "mbx_session" in browser_like.cookies
        assert browser_like.get("/api/v1/experiments").status_code == 200


def test_server_http_port_serves_the_same_api(tmp_path, monkeypatch):
    from tests.server.conftest import ServerProcess
    from tests.ui.conftest import free_port

    http_port = free_port()
    server = ServerProcess(str(tmp_path / "srv"), "--http-port", str(http_port), "--token", "tok")
    server.start()
    try:
        monkeypatch.setenv("MODELBOX_TOKEN", "tok")
        mbx.autolog(backend=server.uri, frameworks=[], experiment="served", capture_console=False)
        with mbx.start_run(name="over-grpc") as run:
            run.log_metric("loss", math.inf, step=0)
        assert mbx.flush(20)
        base = f"http://127.0.0.1:{http_port}"
        assert httpx.get(base + "/api/v1/runs").status_code == 401
        runs = httpx.get(base + "/api/v1/runs", params={"where": "name = 'over-grpc'"}, headers={"authorization": "Bearer tok"}).json()
        assert runs["runs"][0]["metrics"]["loss"]["last"] == "Infinity"
    finally:
        server.stop()
