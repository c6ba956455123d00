"""Comparison reports and experiment exports, made from experiments built in
tests/report_fixtures.py: the publication LaTeX compiles with pdflatex (Debian's
texlive-latex-base and texlive-latex-recommended, installed by scripts/setup.sh --test)
and the PDF holds the table; the HTML holds its charts as SVG and nothing from outside;
CSV, Markdown and JSON hold the same numbers."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from appliance.core.reports import ComparisonOptions, ExportFormat, ExportPart, LatexTemplate, ReportFormat
from appliance.services.reports.service import render_comparison, render_export
from tests.report_fixtures import experiments

SVG = "{http://www.w3.org/2000/svg}"


def report(report_format: ReportFormat, template: LatexTemplate = LatexTemplate.PUBLICATION, **options) -> bytes:
    made = render_comparison(experiments(), report_format, template, ComparisonOptions(**options))
    return made.content


def pdflatex(tmp_path, source: str, *, fits: bool = True) -> str:
    """Compile `source` (with `fits`: no line wider than the page); the PDF's text."""
    for tool in ("pdflatex", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/setup.sh --test installs texlive and poppler-utils")
    (tmp_path / "report.tex").write_text(source)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "report.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert not fits or "Overfull \\hbox" not in done.stdout, done.stdout[-3000:]
    text = subprocess.run(["pdftotext", "-layout", "report.pdf", "-"], cwd=tmp_path, capture_output=True, text=True)
    return text.stdout


def test_the_publication_latex_compiles_to_a_pdf_with_the_table(tmp_path):
    source = report(ReportFormat.LATEX, metrics=["accuracy", "loss"]).decode()
    assert r"\toprule" in source and r"\midrule" in source and r"\bottomrule" in source
    assert r"\usepackage{booktabs}" in source
    text = pdflatex(tmp_path, source)
    assert "Baseline v1 & 50% <old> (baseline)" in text.replace("_", " ")
    assert "Tuned lr=0.001 ~ cafe" in text.replace("˜", "~")
    # the tuned experiment is far better: three stars on accuracy; the same one has none
    tuned = next(line for line in text.splitlines() if line.strip().startswith("Tuned"))
    same = next(line for line in text.splitlines() if line.strip().startswith("Same"))
    assert "0.92∗∗∗" in tuned.replace(" ", "") or "0.92***" in tuned.replace(" ", ""), tuned
    assert "∗" not in same and "*" not in same, same
    assert "Holm" in text and "95" in text


def test_the_table_template_is_the_table_alone(tmp_path):
    table = report(ReportFormat.LATEX, LatexTemplate.TABLE).decode()
    assert r"\documentclass" not in table and table.count(r"\begin{table}") == 1
    document = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + table + "\\end{document}\n"
    assert "Same {again} #3" in pdflatex(tmp_path, document, fits=False)  # the paper's margins decide


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value:
                self.references.append(value)


def test_the_html_report_has_its_charts_inline_and_nothing_from_outside():
    html = report(ReportFormat.HTML).decode()
    page = Page()
    page.feed(html)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.references == [], page.references
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    titles = [ET.fromstring(chart).find(f"{SVG}title").text for chart in charts]  # each is well-formed SVG
    assert "accuracy per experiment" in titles and "loss per experiment" in titles
    assert "accuracy over steps" in titles and "duration_ms over time" in titles
    bars = ET.fromstring(charts[titles.index("accuracy per experiment")])
    assert len(bars.findall(f".//{SVG}rect[@class='bar']")) == 3
    assert len(bars.findall(f".//{SVG}path[@class='error-bar']")) == 3
    over_time = ET.fromstring(charts[titles.index("duration_ms over time")])
    assert len(over_time.findall(f".//{SVG}path[@class='line']")) == 2  # the third experiment has no telemetry
    assert "Baseline_v1 &amp; 50% &lt;old&gt;" in html
    assert "significantly higher" in html  # the stored test's sentence


def test_csv_markdown_and_json_hold_the_same_numbers():
    rows = list(csv.DictReader(io.StringIO(report(ReportFormat.CSV).decode())))
    assert {r["metric"] for r in rows} == {"accuracy", "loss"} and len(rows) == 6
    base = next(r for r in rows if r["experiment_id"] == "exp_base" and r["metric"] == "accuracy")
    assert base["baseline"] == "True" and base["p_value"] == "" and float(base["mean"]) == pytest.approx(0.81)
    tuned = next(r for r in rows if r["experiment_id"] == "exp_better" and r["metric"] == "accuracy")
    assert tuned["significance"] == "***" and float(tuned["adjusted_p_value"]) >= float(tuned["p_value"])
    markdown = report(ReportFormat.MARKDOWN).decode()
    assert "| Baseline_v1 & 50% <old> (baseline) | 5 |" in markdown and "***" in markdown
    document = json.loads(report(ReportFormat.JSON))
    assert document["baseline"] == "exp_base" and len(document["summaries"]) == 6
    assert [e["completed_runs"] for e in document["experiments"]] == [5, 5, 5]


def test_baseline_and_metrics_are_the_callers_choice():
    rows = list(csv.DictReader(io.StringIO(report(ReportFormat.CSV, baseline="exp_same", metrics=["loss"]).decode())))
    assert {r["metric"] for r in rows} == {"loss"}
    assert next(r for r in rows if r["experiment_id"] == "exp_same")["baseline"] == "True"


def test_an_experiment_export_in_json_and_csv():
    experiment = experiments()[1]
    whole = json.loads(render_export(experiment, ExportFormat.JSON, set(ExportPart)).content)
    assert set(whole) == {"experiment", "exported_at", "config", "results", "runs", "telemetry"}
    assert whole["results"][0]["test_type"] == "welch_t_test" and len(whole["runs"]) == 5
    first = whole["runs"][0]["history"]["accuracy"][0]
    assert first == {"step": 0, "value": pytest.approx(0.91 * (1 - 2.718281828 ** (-1 / 3)))}
    some = json.loads(render_export(experiment, ExportFormat.JSON, {ExportPart.CONFIG}).content)
    assert set(some) == {"experiment", "exported_at", "config"}
    runs = list(
        csv.DictReader(io.StringIO(render_export(experiment, ExportFormat.CSV, {ExportPart.RUNS}).content.decode()))
    )
    assert len(runs) == 5 and runs[0]["hyperparameters.learning_rate"] == "0.001"
    assert float(runs[0]["metrics.accuracy"]) == 0.91
