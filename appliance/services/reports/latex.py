"""A comparison as LaTeX: a booktabs table of means with confidence intervals and
significance marks. `publication` is a whole document that compiles with pdflatex as it
is (packages of Debian's texlive-latex-base and texlive-latex-recommended only);
`table` is the table environment alone, to \\input into a paper that loads booktabs."""

from __future__ import annotations

import unicodedata

from appliance.core.reports import Comparison, LatexTemplate, MetricSummary
from appliance.services.reports.tables import number

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": "$<$",
    ">": "$>$",
}


def tex(text: str) -> str:
    """Text as LaTeX source: specials escaped, accents dropped (é -> e), and any other
    character beyond ASCII '?': the document needs nothing but the default fonts."""
    out = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif char in "\n\r\t":
            out.append(" ")
        elif ord(char) < 32 or ord(char) > 0x7E:
            out.append("?")
        else:
            out.append(char)
    return "".join(out)


def _cell(summary: MetricSummary | None) -> str:
    if summary is None or summary.mean is None:
        return "--"
    text = f"${number(summary.mean)}"
    if summary.mark:
        text += f"^{{{summary.mark}}}"
    text += "$"
    if summary.confidence_interval:
        low, high = summary.confidence_interval
        text += f" {{\\scriptsize [{number(low)}, {number(high)}]}}"
    return text


def table(comparison: Comparison) -> str:
    names = {e.id: e.name for e in comparison.experiments}
    columns = "l r " + " ".join("r" for _ in comparison.metrics)
    header = " & ".join(["Experiment", "$n$", *(tex(m) for m in comparison.metrics)])
    rows = []
    for experiment in comparison.experiments:
        name = tex(experiment.name) + (" (baseline)" if experiment.id == comparison.baseline else "")
        completed = sum(1 for r in experiment.runs if r.status == "completed")
        cells = [_cell(comparison.summary(experiment.id, m)) for m in comparison.metrics]
        rows.append(" & ".join([name, str(completed), *cells]) + r" \\")
    level = f"{comparison.confidence_level * 100:.0f}"
    note = (
        f"Means over completed runs, {level}\\,\\% confidence intervals in brackets. "
        f"Welch's $t$-test against {tex(names[comparison.baseline])}, Holm-adjusted: "
        r"$^{*}p<.05$, $^{**}p<.01$, $^{***}p<.001$."
    )
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering",
            r"\small",
            f"\\caption{{{tex(comparison.title)}}}",
            r"\label{tab:comparison}",
            f"\\begin{{tabular}}{{{columns}}}",
            r"\toprule",
            header + r" \\",
            r"\midrule",
            *rows,
            r"\bottomrule",
            r"\end{tabular}",
            r"\par\smallskip",
            f"\\parbox{{\\linewidth}}{{\\footnotesize {note}}}",
            r"\end{table}",
        ]
    )


def comparison_latex(comparison: Comparison, template: LatexTemplate) -> str:
    body = table(comparison)
    if template is LatexTemplate.TABLE:
        return f"% needs \\usepackage{{booktabs}}\n{body}\n"
    wide = len(comparison.metrics) > 3
    return "\n".join(
        [
            r"\documentclass[11pt]{article}",
            r"\usepackage{booktabs}",
            r"\usepackage[margin=2cm" + (",landscape" if wide else "") + "]{geometry}",
            r"\begin{document}",
            body,
            r"\end{document}",
            "",
        ]
    )
