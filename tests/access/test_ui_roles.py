"""The web UI of a team server in headless Chromium: log in with per-user tokens, see who you
are, and only the buttons your role may use (model edits, aliases, run edits, archive and
delete of runs, models and experiments); a refused write shows the server's reason."""

from __future__ import annotations

import time

from modelbox_autolog._records import Batch, ModelFile, ModelRecord, RunStart, new_id

from .conftest import TeamServer, make_token


def _log_in(page, team, user: str) -> None:  # noqa: F811
    page.goto(team.http + "/")
    page.wait_for_selector("input[name=token]")
    page.fill("input[name=token]", team.tokens[user])
    page.click("button[type=submit]")
    page.wait_for_selector("#who:not([hidden])")


def _buttons(page, team, run_id: str, model_id: str) -> dict[str, bool]:  # noqa: F811
    """Which write controls the run, model and experiments pages show."""
    shown = {}
    page.goto(f"{team.http}/#/run/{run_id}")
    page.wait_for_selector("#run-note")
    for control in ("#rename-run", "#archive-run", "#delete-run", "#save-run"):
        shown[control] = page.locator(control).count() > 0
    shown["note editable"] = page.locator("#run-note").is_enabled()
    page.goto(f"{team.http}/#/model/{model_id}")
    page.wait_for_selector("#model-status")
    for control in ("#save-model", "#finalize", "#delete-model", "#set-alias"):
        shown[control] = page.locator(control).count() > 0
    page.goto(f"{team.http}/#/")
    page.wait_for_selector("#experiments")
    shown["experiment archive/delete"] = page.locator("#experiments button").count() > 0
    return shown


WRITER_CONTROLS = {"#rename-run", "#archive-run", "#delete-run", "#save-run", "note editable", "#save-model", "#delete-model"}
ADMIN_CONTROLS = {"#finalize", "#set-alias", "experiment archive/delete"}


def test_the_ui_offers_what_the_role_may_do(page, tmp_path, artifacts_dir):  # noqa: F811
    store = f"sqlite:///{tmp_path}/ui/store/modelbox.db"
    team = TeamServer(str(tmp_path / "ui"), store)
    team.tokens = {user: make_token(store, user, role) for user, role in
                   (("rita", "reader"), ("bob", "writer"), ("ada", "admin"))}
    team.start()
    try:
        weights = tmp_path / "w.bin"
        weights.write_bytes(b"w" * 64)
        run_id, model_id = new_id(), new_id()
        team.backend("ada").write(Batch(new_id(), "ada", [
            RunStart(run_id, "ui", "ada-run", time.time()),
            ModelRecord(model_id, run_id, "ada-model", "custom", [ModelFile("w.bin", str(weights))], time.time()),
        ], time.time()))

        _log_in(page, team, "rita")
        assert page.inner_text("#who") == "rita (reader)"
        page.goto(f"{team.http}/#/model/{model_id}")
        page.wait_for_selector("#model-status")
        assert page.locator("#save-model").count() == 0 and page.locator("#finalize").count() == 0
        assert {control for control, shown in _buttons(page, team, run_id, model_id).items() if shown} == set()
        page.click("#logout button")
        page.wait_for_selector("input[name=token]")

        _log_in(page, team, "bob")
        assert page.inner_text("#who") == "bob (writer)"
        page.goto(f"{team.http}/#/model/{model_id}")
        page.wait_for_selector("#save-model")
        assert page.locator("#finalize").count() == 0
        page.click("text=+ label")
        page.locator("#labels input.label-key").last.fill("stage")
        page.locator("#labels input.label-value").last.fill("prod")
        page.click("#save-model")
        page.wait_for_selector("#model-message .error")
        assert "created by 'ada'" in page.inner_text("#model-message")
        page.screenshot(path=f"{artifacts_dir}/ui-writer-refused.png", full_page=True)
        assert team.client("ada").model(model_id).labels == {}
        # A writer is offered edits and deletes (refused on another's, as above), never aliases or experiments.
        assert {control for control, shown in _buttons(page, team, run_id, model_id).items() if shown} == WRITER_CONTROLS
        page.click("#logout button")
        page.wait_for_selector("input[name=token]")

        _log_in(page, team, "ada")
        page.goto(f"{team.http}/#/model/{model_id}")
        page.wait_for_selector("#finalize")
        assert {control for control, shown in _buttons(page, team, run_id, model_id).items() if shown} == (
            WRITER_CONTROLS | ADMIN_CONTROLS)
        assert not page.dialogs
        assert [p for p in page.problems if "403" not in p] == []  # only bob's refused save
    finally:
        team.stop()
