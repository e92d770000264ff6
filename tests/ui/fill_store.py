"""Fill a store with real autologged fits (run by the UI tests in a subprocess): a grid search
(parent + child runs), plain scikit-learn and XGBoost fits with models, and runs with hostile
names and artifacts."""

from __future__ import annotations

import os
import sys

import modelbox_autolog as mbx

XSS_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def main(uri: str, folder: str) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    mbx.autolog(backend=uri, experiment="ui-test", capture_console=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    for c in (0.01, 0.1, 1.0, 10.0):
        LogisticRegression(C=c, max_iter=200).fit(X, y)
    GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0, 3.0]}, cv=2).fit(X, y)
    try:
        import xgboost as xgb

        for depth in (1, 2, 3):
            xgb.XGBClassifier(n_estimators=25, max_depth=depth).fit(X, y, eval_set=[(X, y)], verbose=False)
    except ImportError:
        pass

    html_path = os.path.join(folder, "report.html")
    with open(html_path, "w") as handle:
        handle.write("<html><body><script>window.__xss=3; alert('xss')</script><h1>report</h1></body></html>")
    svg_path = os.path.join(folder, "plot.svg")
    with open(svg_path, "w") as handle:
        handle.write('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="alert(\'svg\')">'
                     '<script>alert("svg script")</script><rect width="40" height="40" fill="teal"/></svg>')
    notes = os.path.join(folder, "notes.txt")
    with open(notes, "w") as handle:
        handle.write("<b>plain text, not markup</b>\n")
    with mbx.start_run(name=XSS_NAME, experiment="ui-test", tags={"team": "<i>red</i>"}) as run:
        run.log_params({"C": 0.5, "note": "<script>window.__xss=4</script>"})
        for step in range(30):
            run.log_metric("loss", float("nan") if step == 20 else 1.0 / (step + 1), step=step)
        run.log_metric("final_auc", 0.91)
        run.log_artifact(html_path)
        run.log_artifact(svg_path)
        run.log_artifact(notes)
        print("<script>window.__xss=5</script> printed to the console")
    try:
        with mbx.start_run(name="broken", experiment="ui-test") as run:
            run.log_metric("loss", 1.0, step=0)
            raise RuntimeError("diverged at step 1")
    except RuntimeError:
        pass
    assert mbx.flush(60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
