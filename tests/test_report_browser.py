"""The eval report as people see it: a headless browser opens report.html and every per-task plot renders."""

import re
import shutil
import subprocess

import pytest

from clinitune.eval.metrics import primary
from clinitune.eval.report import EvalResults, comparison_rows, write_report
from clinitune.eval.run import summarize

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no headless browser: install chromium (`make test` does, from Debian's packages)")


def test_report_html_renders_a_plot_per_task(tmp_path):
    per_example = {
        "zero_shot": {"icd10_coding": [0.0] * 12, "knowledge": [0.2, 0.3] * 6},
        "fine_tuned": {"icd10_coding": [1.0] * 9 + [0.0] * 3, "knowledge": [0.4, 0.5] * 6},
    }
    scores = {c: {t: [{primary(t): v} for v in vals] for t, vals in per.items()} for c, per in per_example.items()}
    cands = {c: summarize(scores[c], None, seed=0) for c in scores}
    results = EvalResults(candidates=cands, n_examples=24, seed=0, comparison=comparison_rows(cands, per_example))
    write_report(results, [], tmp_path, None)

    dom = subprocess.run(
        [
            _browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    imgs = re.findall(r"<img[^>]*>", dom)
    assert len(imgs) == 2, dom[:2000]
    assert all('data-rendered="true"' in img for img in imgs), imgs
    assert "icd10_coding" in dom and ">better<" in dom  # the verdict cell of the table
