"""matplotlib capture on the real library: saved and shown figures become PNG artifacts, capped."""

from __future__ import annotations

import hashlib
import io

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import modelbox_autolog as mbx  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, [(r.name, r.tags) for r in runs]
    return runs[0]


def _plots(run):
    return [a for a in run.artifacts() if a.kind == "plot"]


def _read(client, run, name, tmp_path) -> bytes:
    with open(client.download_artifact(run.id, name, tmp_path / "dl"), "rb") as handle:
        return handle.read()


def test_saved_and_shown_figures_are_kept(autologged, tmp_path):
    import matplotlib.pyplot as plt

    with mbx.start_run(name="plots") as run:
        plt.figure()
        plt.plot([0, 1, 2], [3, 1, 2])
        plt.title("Loss curve")
        png_path = tmp_path / "loss.png"
        plt.savefig(png_path)  # pyplot.savefig -> Figure.savefig: kept once
        with open(png_path, "rb") as handle:
            user_bytes = handle.read()
        plt.show()  # the same figure, unchanged: not kept again
        plt.close("all")

        fig, ax = plt.subplots()
        ax.bar(["a", "b"], [1, 2])
        ax.set_title("Class balance")
        fig.savefig(tmp_path / "balance.pdf")  # another format: rendered once more as PNG
        buffer = io.BytesIO()
        fig2, ax2 = plt.subplots()
        ax2.scatter([1, 2], [2, 1])
        ax2.set_title("Residuals")
        fig2.savefig(buffer, format="png")  # a file object: named by its title
        fig3, ax3 = plt.subplots()
        ax3.hist([1, 1, 2, 3])
        fig3.suptitle("Histogram of errors")
        plt.show()  # kept: fig3 (new); fig and fig2 unchanged since they were kept
        ax3.set_title("changed")
        plt.show()  # fig3 changed: kept again
        plt.close("all")

    stored = _only_run(autologged)
    assert stored.id == run.id
    names = sorted(a.name for a in _plots(stored))
    assert names == ["Histogram_of_errors-2.png", "Histogram_of_errors.png", "Residuals.png", "balance.png", "loss.png"]
    kept = _read(autologged, stored, "loss.png", tmp_path)
    assert kept == user_bytes  # the user's own PNG, byte for byte
    with open(png_path, "rb") as handle:
        assert hashlib.sha256(handle.read()).digest() == hashlib.sha256(user_bytes).digest()  # left as it was
    assert all(_read(autologged, stored, n, tmp_path).startswith(PNG_MAGIC) for n in names)
    sources = sorted(e.attrs["source"] for e in stored.events("image_logged"))
    assert sources == ["savefig", "savefig", "savefig", "show", "show"]


def test_plain_script_figure_goes_to_the_process_run_with_the_step(autologged, tmp_path):
    import matplotlib.pyplot as plt

    mbx.log_metric("loss", 0.5, step=120)  # a plain loop logging by hand
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    fig.savefig(tmp_path / "progress.png")
    plt.close(fig)
    run = _only_run(autologged)
    assert run.name == "process"
    assert [a.name for a in _plots(run)] == ["progress-step120.png"]
    assert run.events("image_logged")[0].attrs["step"] == 120


def test_figures_per_run_are_capped(store_uri, client, tmp_path):
    import matplotlib.pyplot as plt

    mbx.autolog(backend=store_uri, capture_console=False, max_figures_per_run=3)
    with mbx.start_run(name="flood"):
        fig, ax = plt.subplots()
        for batch in range(8):  # a figure per batch
            ax.plot([batch, batch + 1])
            fig.savefig(tmp_path / f"batch{batch}.png")
        plt.close(fig)
    run = _only_run(client)
    assert sorted(a.name for a in _plots(run)) == ["batch0.png", "batch1.png", "batch2.png"]
    assert run.tags["images_skipped"] == "5"
    limit = run.events("image_limit_reached")
    assert len(limit) == 1 and limit[0].attrs["limit"] == 3


def test_log_plots_false_keeps_no_figure(store_uri, client, tmp_path):
    import matplotlib.pyplot as plt

    mbx.autolog(backend=store_uri, capture_console=False, log_plots=False)
    with mbx.start_run(name="quiet"):
        fig, ax = plt.subplots()
        ax.plot([1, 2])
        fig.savefig(tmp_path / "x.png")
        plt.close(fig)
    run = _only_run(client)
    assert _plots(run) == [] and (tmp_path / "x.png").is_file()


def test_savefig_errors_and_results_pass_through(autologged, tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert fig.savefig(tmp_path / "ok.png") is None
    with pytest.raises(ValueError):
        fig.savefig(tmp_path / "bad.notaformat")
    plt.close(fig)
