"""A self-contained HTML report: the summary, then outputs side by side, with filters.

Every piece of model output, test description and variable is escaped with
``html.escape(..., quote=True)``; nothing from a model ever reaches the page's
script, which only reads ``data-`` attributes that assay itself writes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .results import flaky, results, run_info, summary

__all__ = ["write_html"]

MAX_ROWS = 5000

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.4em;
vertical-align:top;text-align:left}th{background:#f3f3f3}
pre{white-space:pre-wrap;max-width:40em;max-height:18em;overflow:auto;margin:.2em 0}
.pass{color:#176a2b;font-weight:600}.fail{color:#b3261e;font-weight:600}
.why{color:#666;font-size:12px}.vars{font-size:12px;color:#444}
.controls button{margin-right:.4em}.controls input{margin-left:1em;width:20em}
"""

_SCRIPT = """
let mode='all';
function apply(){const q=document.getElementById('q').value.toLowerCase();
for(const tr of document.querySelectorAll('tbody.cases tr')){
const s=tr.dataset.status;const okMode=mode==='all'||(mode==='fail'&&s!=='pass')||
(mode==='flaky'&&tr.dataset.flaky==='1');
tr.hidden=!(okMode&&(!q||tr.textContent.toLowerCase().includes(q)));}}
function show(m){mode=m;apply();}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _by_test(job_id: str, db: Path | str | None) -> Iterator[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    for row in results(job_id, db):
        if group and row["test_idx"] != group[0]["test_idx"]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def write_html(job_id: str, path: Path, db: Path | str | None = None) -> int:
    info = run_info(job_id, db)
    groups = summary(job_id, db)
    unstable = {(f["test_idx"], f["prompt_label"], f["provider_label"]) for f in flaky(job_id, db)}
    columns = [(g.prompt, g.provider) for g in groups]
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("<!doctype html><html><head><meta charset='utf-8'>")
        f.write(f"<title>assay eval {_e(job_id)}</title><style>{_STYLE}</style></head><body>")
        f.write(
            f"<h1>assay eval {_e(job_id)}</h1><p>{_e(info.get('created_utc'))} · "
            f"{_e(info.get('status'))} · {_e(info.get('total'))} cases</p>"
        )
        f.write(
            "<h2>Summary</h2><table><tr><th>prompt</th><th>provider</th><th>pass rate"
            " (95% CI)</th><th>mean score (95% CI)</th><th>cases</th><th>cost</th></tr>"
        )
        for g in groups:
            f.write(
                f"<tr><td>{_e(g.prompt)}</td><td>{_e(g.provider)}</td>"
                f"<td>{_pct(g.pass_rate)} ({_pct(g.pass_low)}–{_pct(g.pass_high)})</td>"
                f"<td>{g.score:.3f} ({g.score_low:.3f}–{g.score_high:.3f})</td>"
                f"<td>{g.n}</td><td>${g.cost_usd:.6f}</td></tr>"
            )
        f.write(
            "</table><h2>Outputs</h2><div class='controls'>"
            "<button onclick=\"show('all')\">all</button>"
            "<button onclick=\"show('fail')\">failures</button>"
            "<button onclick=\"show('flaky')\">flaky</button>"
            "<input id='q' placeholder='filter text' oninput='apply()'></div>"
        )
        f.write("<table><thead><tr><th>test</th>")
        for prompt, provider in columns:
            f.write(f"<th>{_e(prompt)}<br><span class='why'>{_e(provider)}</span></th>")
        f.write("</tr></thead><tbody class='cases'>")
        for rows in _by_test(job_id, db):
            if n >= MAX_ROWS:
                break
            first = rows[0]
            statuses = {r["pass"] for r in rows}
            status = "pass" if statuses == {True} else "fail" if statuses == {False} else "mixed"
            is_flaky = any((first["test_idx"], p, v) in unstable for p, v in columns)
            f.write(
                f"<tr data-status='{status}' data-flaky='{int(is_flaky)}'><td>"
                f"{_e(first['description'] or 'test ' + str(first['test_idx']))}"
                f"<div class='vars'>{_e(json.dumps(first['vars'], ensure_ascii=False))}"
                "</div></td>"
            )
            for column in columns:
                f.write("<td>")
                for r in rows:
                    if (r["prompt_label"], r["provider_label"]) != column:
                        continue
                    mark = (
                        "<span class='pass'>PASS</span>"
                        if r["pass"]
                        else ("<span class='fail'>FAIL</span>")
                    )
                    f.write(
                        f"{mark} <span class='why'>score {r['score']:.2f}"
                        f"{' · cached' if r['cached'] else ''}</span>"
                    )
                    f.write(
                        f"<pre>{_e(r['output'] if r['output'] is not None else r['error'])}</pre>"
                    )
                    if r["reason"]:
                        f.write(f"<div class='why'>{_e(r['reason'])}</div>")
                f.write("</td>")
            f.write("</tr>")
            n += 1
        f.write("</tbody></table>")
        if n >= MAX_ROWS:
            f.write(f"<p>Showing the first {MAX_ROWS} tests; export the rest with --output.</p>")
        f.write(f"<script>{_SCRIPT}</script></body></html>\n")
    return n
