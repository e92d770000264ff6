"""End to end in headless Chromium against ``modelbox ui`` started by the test, on a store filled by
real autologged fits. Screenshots of each page go to test-artifacts/ui/."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import modelbox_autolog as mbx
from modelbox_autolog.backends import ImmutableModel
from tests.ui.conftest import subprocess_env
from tests.ui.fill_store import XSS_NAME

LINE_SERIES = """el => echarts.getInstanceByDom(el).getOption().series.filter(s => s.type === 'line').map(s => s.name)"""


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, f"{name}.png"), full_page=True)


def no_problems(page, expected: tuple[str, ...] = ()):
    assert not page.dialogs, page.dialogs
    assert page.evaluate("window.__xss") is None
    assert not [p for p in page.problems if not any(e in p for e in expected)], page.problems


def test_runs_table_shows_and_filters(page, ui, ui_store, artifacts_dir):
    client = mbx.Client(ui_store)
    experiment = client.experiments()[0]
    page.goto(f"{ui.url}/#/runs?experiment={experiment.id}")
    page.wait_for_selector("#runs-table tbody tr")
    top_level = client.count_runs(experiment=experiment.id, where="parent is null")
    assert page.locator("#runs-table tbody tr").count() == top_level
    shot(page, artifacts_dir, "runs-table")
    page.fill("#where", "params.C >= 1 and params.C < 100")
    page.press("#where", "Enter")
    expected = client.runs(experiment=experiment.id, where="parent is null and params.C >= 1 and params.C < 100")
    page.wait_for_function("n => document.querySelectorAll('#runs-table tbody tr').length === n", arg=len(expected))
    shown = page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert shown == [r.id for r in expected] and len(shown) >= 2
    shot(page, artifacts_dir, "runs-filtered")
    page.fill("#where", "params.C >>= 1")
    page.press("#where", "Enter")
    page.wait_for_selector("#where-error mark")
    assert "position 10" in page.inner_text("#where-error")
    # the grid search's candidates are folded under their parent
    page.fill("#where", "")
    page.press("#where", "Enter")
    page.wait_for_selector("button.fold")
    page.click("button.fold")
    page.wait_for_selector("tr.child")
    assert page.locator("tr.child").count() == 3
    no_problems(page, expected=("status of 400",))  # the invalid filter's answer


def test_experiments_page_shows_run_counts_and_the_latest_run(page, ui, ui_store, artifacts_dir):
    client = mbx.Client(ui_store)
    (experiment,) = [e for e in client.experiments() if e.name == "ui-test"]
    page.goto(f"{ui.url}/#/")
    page.wait_for_selector("#experiments tbody tr")
    page.wait_for_function("() => [...document.querySelectorAll('#experiments td.num')].every(td => !td.textContent.includes('…'))")
    cells = page.locator("#experiments tbody tr", has_text="ui-test").locator("td").all_inner_texts()
    runs = client.runs(experiment=experiment.id)
    assert cells[1] == str(len([r for r in runs if r.parent_run_id is None]))
    assert cells[3] == str(len([r for r in runs if r.status in ("failed", "killed")]))
    assert cells[4].startswith(runs[0].name or runs[0].id[:8]) and runs[0].status in cells[4]
    assert cells[5]  # last activity
    shot(page, artifacts_dir, "experiments")
    page.click("#experiments tbody tr:has-text('ui-test') td:nth-child(4) a")  # the failed/killed count opens those runs
    page.wait_for_selector("#runs-table tbody tr")
    assert "status in ('failed', 'killed')" in page.input_value("#where")
    no_problems(page)


def test_compare_draws_one_line_per_selected_run(page, ui, ui_store, artifacts_dir):
    client = mbx.Client(ui_store)
    chosen = client.runs(experiment="ui-test", where="params.max_depth in (1, 2, 3)")  # XGBoost fits: a curve each
    assert len(chosen) == 3
    page.goto(f"{ui.url}/#/runs?experiment=ui-test")
    page.wait_for_selector("#runs-table tbody tr")
    for run in chosen:
        page.check(f"tr[data-run='{run.id}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_selector("#compare-charts .chart canvas")
    page.wait_for_selector("#parallel canvas")
    charts = page.locator("#compare-charts .chart")
    names = charts.first.evaluate(LINE_SERIES)
    assert len(names) == 3 and all(any(r.id[:8] in n for n in names) for r in chosen)
    assert page.locator("#params-diff tr.differs").count() >= 1  # max_depth differs between the runs
    assert page.locator("#metrics-diff tbody tr").count() >= 1
    shot(page, artifacts_dir, "compare")
    no_problems(page)


def test_run_page_shows_events_and_updates_live(page, ui, ui_store, artifacts_dir, tmp_path):
    script = tmp_path / "slow_fit.py"
    script.write_text(
        "import time\nimport numpy as np\nimport modelbox_autolog as mbx\n"
        "mbx.autolog(experiment='live', capture_console=False)\n"
        "from sklearn.linear_model import SGDClassifier\n"
        "X = np.random.default_rng(0).normal(size=(100, 3)); y = (X[:, 0] > 0).astype(int)\n"
        "with mbx.start_run(name='live-run') as run:\n"
        "    for epoch in range(12):\n"
        "        with run.event('epoch', epoch=epoch):\n"
        "            SGDClassifier(max_iter=5, tol=None).partial_fit(X, y, classes=[0, 1])\n"
        "            time.sleep(0.5)\n"
        "        run.log_metric('loss', 1.0 / (epoch + 1), step=epoch, epoch=epoch)\n"
        "        run.set_progress((epoch + 1) / 12)\n"
        "        mbx.flush(5)\n")
    proc = subprocess.Popen([sys.executable, str(script)], env=subprocess_env(
        MODELBOX_BACKEND=ui_store, MODELBOX_JOURNAL_DIR=str(tmp_path / "journal")), cwd=str(tmp_path))
    try:
        client = mbx.Client(ui_store)
        deadline = time.monotonic() + 60
        while not client.runs(where="name = 'live-run' and metrics.loss is not null") and time.monotonic() < deadline:
            time.sleep(0.2)
        run = client.runs(where="name = 'live-run'")[0]
        page.goto(f"{ui.url}/#/run/{run.id}")
        page.wait_for_selector("#event-summary")
        first = int(page.inner_text("#event-summary tbody tr:has-text('epoch') td:nth-child(2)"))
        assert first < 12
        # no reload: the change feed pushes the new epochs to the open page
        page.wait_for_function(
            "n => { const c = document.querySelector('#event-summary tbody tr td:nth-child(2)'); return c && +c.textContent > n; }",
            arg=first, timeout=30_000)
        assert page.locator("#timeline canvas").count() >= 1
        shot(page, artifacts_dir, "run-live")
        assert proc.wait(60) == 0
        page.wait_for_selector(".run-header .status.finished", timeout=30_000)
        page.wait_for_function("() => document.querySelector('#event-summary tbody tr td:nth-child(2)').textContent === '12'",
                               timeout=30_000)
        names = page.locator("#charts .chart[data-metric='loss']").evaluate(LINE_SERIES)
        assert names == ["loss"]
        shot(page, artifacts_dir, "run-finished")
        no_problems(page)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_finalizing_in_the_ui_makes_the_model_immutable(page, ui, ui_store, artifacts_dir):
    client = mbx.Client(ui_store)
    model = [m for m in client.models(name="LogisticRegression") if m.status == "draft"][0]
    page.goto(f"{ui.url}/#/model/{model.id}")
    page.wait_for_selector("#finalize")
    assert page.inner_text("#model-url") == model.url
    page.click("text=+ label")
    page.locator("#labels input.label-key").last.fill("stage")
    page.locator("#labels input.label-value").last.fill("production")
    page.click("#save-model")
    deadline = time.monotonic() + 10
    while client.model(model.id).labels.get("stage") != "production" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.model(model.id).labels["stage"] == "production"
    page.wait_for_timeout(1500)  # the page re-renders from the change feed
    page.confirm_next = True
    page.wait_for_selector("#finalize")
    page.click("#finalize")
    page.wait_for_selector("#model-status.final")
    shot(page, artifacts_dir, "model-final")
    assert client.model(model.id).status == "final"
    with pytest.raises(ImmutableModel):
        client.update_model(model.id, labels={"stage": "changed"})
    assert page.locator("#finalize").count() == 0 and page.locator("#metadata").is_disabled()


def test_xss_in_names_and_artifacts_does_not_execute(page, ui, ui_store, artifacts_dir):
    client = mbx.Client(ui_store)
    run = client.runs(where="params.note like '%script%'")[0]
    assert run.name == XSS_NAME
    page.goto(f"{ui.url}/#/runs?experiment=ui-test")
    page.wait_for_selector("#runs-table tbody tr")
    assert XSS_NAME in page.inner_text("#runs-table")  # shown as text
    page.goto(f"{ui.url}/#/run/{run.id}")
    page.wait_for_selector("#artifact-list")
    assert page.inner_text(".run-header h1").startswith(XSS_NAME)
    for name in ("report.html", "plot.svg", "notes.txt"):
        page.click(f"#artifact-list tr:has-text('{name}') button")
        page.wait_for_selector("#preview a")
    page.wait_for_selector("#preview pre")
    assert "<b>plain text" in page.inner_text("#preview pre")
    shot(page, artifacts_dir, "run-xss")
    # opened directly, the files still cannot script the UI's origin
    artifacts = {a.name: a for a in run.artifacts()}
    svg_url = f"{ui.url}/api/v1/runs/{run.id}/artifacts/{artifacts['plot.svg'].id}/content"
    page.goto(svg_url)
    page.wait_for_timeout(300)
    assert not page.dialogs, page.dialogs  # the SVG's onload and <script> did not run (sandboxed)
    page.goto(f"{ui.url}/#/")
    page.wait_for_selector("h1")
    with page.expect_download():
        page.evaluate("url => { const a = document.createElement('a'); a.href = url; document.body.append(a); a.click(); }",
                      f"{ui.url}/api/v1/runs/{run.id}/artifacts/{artifacts['report.html'].id}/content")
    page.goto(f"{ui.url}/#/compare?ids={run.id}")
    page.wait_for_selector("#params-diff")
    assert not page.dialogs, page.dialogs
    assert page.evaluate("window.__xss") is None
