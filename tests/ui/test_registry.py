"""The registry and run lifecycle in the HTTP API and the pages, on a store of their own (these tests
change and delete things), served by a real ``modelbox ui`` process."""

from __future__ import annotations

import os

import pytest

import modelbox_autolog as mbx

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def registry_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registry-ui")
    uri = f"sqlite:///{folder}/store/modelbox.db"
    (folder / "model.bin").write_bytes(os.urandom(512))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODELBOX_JOURNAL_DIR", str(folder / "journal"))
        return _fill(uri, folder)


def _fill(uri, folder):
    mbx.autolog(backend=uri, frameworks=[], experiment="reg", capture_console=False, capture_env=False)
    ids = {}
    with mbx.start_run(name="trainer") as run:
        run.log_params({"lr": 0.1})
        run.set_tags({"team": "vision", "debug": "yes"})
        for step in range(5):
            run.log_metric("loss", 1 / (step + 1), step=step)
        ids["m1"] = run.log_model(str(folder / "model.bin"), name="clf").id
        ids["m2"] = run.log_model(str(folder / "model.bin"), name="clf").id
    ids["trainer"] = run.id
    with mbx.start_run(name="scratch-run", experiment="scratch") as scratch:
        scratch.log_metric("loss", 0.5)
    ids["scratch"] = scratch.id
    assert mbx.flush(30)
    mbx.shutdown()
    return uri, ids


@pytest.fixture(scope="module")
def registry_ui(registry_store, ui_factory):
    return ui_factory(registry_store[0])


@pytest.fixture(scope="module")
def http(registry_ui):
    with httpx.Client(base_url=registry_ui.url, timeout=30) as client:
        client.get("/")  # the page sets the CSRF cookie
        yield client


def w(http) -> dict[str, str]:
    return {"x-csrf-token": http.cookies["mbx_csrf"], "content-type": "application/json"}


def test_model_references_aliases_and_labels_over_http(http, registry_store):
    _uri, ids = registry_store
    paths = http.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/models/{name}/aliases/{alias}", "/api/v1/runs/{run_id}/archive", "/api/v1/experiments/{experiment}"):
        assert path in paths
    assert "409" in paths["/api/v1/runs/{run_id}"]["delete"]["responses"]
    assert http.get("/api/v1/models/clf@1").json()["id"] == ids["m1"]
    assert http.get("/api/v1/models/models:/clf/2").json()["id"] == ids["m2"]
    assert http.put("/api/v1/models/clf/aliases/production", json={"version": 1}).status_code == 403  # no CSRF token
    reply = http.put("/api/v1/models/clf/aliases/production", json={"version": 1}, headers=w(http))
    assert reply.status_code == 200 and reply.json()["aliases"] == ["production"]
    assert http.get("/api/v1/models/clf@production").json()["id"] == ids["m1"]
    missing = http.get("/api/v1/models/clf@canary")
    assert missing.status_code == 404 and "its aliases: production (v1)" in missing.json()["message"]
    refused = http.delete(f"/api/v1/models/{ids['m1']}", headers=w(http))
    assert refused.status_code == 409 and "clf@production" in refused.json()["message"]
    bad = http.put("/api/v1/models/clf/aliases/latest", json={"version": 2}, headers=w(http))
    assert bad.status_code == 409 and "not valid" in bad.json()["message"]

    http.patch(f"/api/v1/models/{ids['m2']}", json={"labels": {"stage": "dev", "owner": "ana"}}, headers=w(http))
    reply = http.patch(f"/api/v1/models/{ids['m2']}", json={"labels": {"stage": None}}, headers=w(http))
    assert reply.json()["labels"] == {"owner": "ana"}
    assert [m["id"] for m in http.get("/api/v1/models", params={"label": "owner"}).json()["models"]] == [ids["m2"]]
    assert http.delete("/api/v1/models/clf/aliases/production", headers=w(http)).status_code == 200
    assert http.get(f"/api/v1/models/{ids['m1']}").json()["aliases"] == []


def test_run_edits_archive_and_delete_over_http(http, registry_store):
    _uri, ids = registry_store
    run_id = ids["trainer"]
    reply = http.patch(f"/api/v1/runs/{run_id}", json={"name": "trainer-v2", "note": "kept", "tags": {"debug": None, "ok": "1"}},
                       headers=w(http))
    assert reply.status_code == 200
    doc = http.get(f"/api/v1/runs/{run_id}").json()
    assert (doc["name"], doc["note"], doc["tags"]) == ("trainer-v2", "kept", {"team": "vision", "ok": "1"})
    assert http.patch(f"/api/v1/runs/{run_id}", json={"tags": {"x": 3}}, headers=w(http)).status_code == 400

    assert http.post(f"/api/v1/runs/{run_id}/archive", json={}, headers=w(http)).json()["archived_at"]
    listed = [r["id"] for r in http.get("/api/v1/runs", params={"experiment": "reg"}).json()["runs"]]
    assert run_id not in listed
    assert [r["id"] for r in http.get("/api/v1/runs", params={"archived": "only"}).json()["runs"]] == [run_id]
    assert http.post(f"/api/v1/runs/{run_id}/restore", json={}, headers=w(http)).json()["archived_at"] is None

    assert http.post("/api/v1/experiments/scratch/archive", json={}, headers=w(http)).json()["archived_at"]
    assert [e["name"] for e in http.get("/api/v1/experiments").json()["experiments"]] == ["reg"]
    assert len(http.get("/api/v1/experiments", params={"archived": "all"}).json()["experiments"]) == 2
    deleted = http.delete("/api/v1/experiments/scratch", headers=w(http))
    assert deleted.status_code == 200 and deleted.json()["deleted"]["runs"] == 1
    assert http.get(f"/api/v1/runs/{ids['scratch']}").status_code == 404
    changes = http.get("/api/v1/changes", params={"since": 0, "limit": 10000}).json()["changes"]
    assert {("deleted", "experiment"), ("deleted", "run"), ("updated", "run")} <= {(c["kind"], c["object_type"]) for c in changes}


def test_alias_and_archive_in_the_pages(page, registry_ui, registry_store, artifacts_dir):
    _uri, ids = registry_store
    page.goto(f"{registry_ui.url}/#/model/{ids['m2']}")
    page.wait_for_selector("#aliases")
    assert "no alias points here" in page.inner_text("#aliases")
    page.fill("#alias-name", "staging")
    page.click("#set-alias")
    page.wait_for_selector("#aliases .alias[data-alias='staging']")
    assert "clf@staging" in page.inner_text("#aliases")
    assert mbx.Client(registry_store[0]).model("clf@staging").id == ids["m2"]
    page.screenshot(path=os.path.join(artifacts_dir, "model-aliases.png"), full_page=True)

    run_id = ids["trainer"]
    page.goto(f"{registry_ui.url}/#/run/{run_id}")
    page.wait_for_selector("#archive-run")
    page.fill("#run-note", "the one we ship")
    page.click("#save-run")
    page.wait_for_function("() => document.querySelector('#tags-message').textContent === 'saved'")
    page.confirm_next = True
    page.click("#archive-run")
    page.wait_for_selector("#archived-badge")
    assert page.inner_text("#archive-run") == "Restore"
    client = mbx.Client(registry_store[0])
    assert client.run(run_id).archived and client.run(run_id).note == "the one we ship"
    page.goto(f"{registry_ui.url}/#/runs?experiment=reg")
    page.wait_for_selector("#show-archived")
    page.wait_for_function("() => !document.querySelector(`#runs-table tbody tr[data-run]`)")
    page.check("#show-archived")
    page.wait_for_selector(f"#runs-table tr.archived[data-run='{run_id}']")
    page.screenshot(path=os.path.join(artifacts_dir, "runs-archived.png"), full_page=True)
    assert not page.dialogs and not page.problems, (page.dialogs, page.problems)
