"""``J-report.html``: one self-contained page per job, to open first.

Everything is inside the file (images as ``data:`` URIs, the job's log as JSON, no script, no
font or style sheet from elsewhere), so it opens offline, from a bucket or as a mail
attachment. Links to the job's other files are relative: they work wherever the job's folder is.
What says which run it was (job id, version, software, spec, log) sits in ``#job-meta`` and
``#job-log``, apart from the data, so two runs' reports compare (:func:`data_of`).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;height:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{font-weight:600}dd{margin:0}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;max-height:400px}
.panel{margin:.6em 0 1.2em}.muted{color:#777}ul.files{columns:3;font-size:12px}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(rows: list[dict], columns: list[str], left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{html.escape(str(r.get(c, "")))}</td>'
                         for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(path: str | Path, title: str, summary: dict, meta: dict, spec: dict, tracks_png: bytes | None,
                 anomalies: list[dict], panels: list[tuple[int, str, bytes]], files: list[str], log: dict,
                 note: str = "") -> None:
    """``summary``: label -> value (the data); ``meta``: label -> value of what says which run
    this is (version, software), shown with the ``spec`` in ``#job-meta``; ``anomalies``: one
    row per anomaly (the tracks table); ``panels``: (anomaly id, caption, PNG) of the anomalies
    shown step by step; ``files``: the job's other files by name; ``log``: the job's record
    (states, stages, timings) in ``#job-log``. ``outputs.compare`` leaves those two out."""
    columns = list(anomalies[0]) if anomalies else ["anomaly_id"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{html.escape(note)}</p>' if note else "",
        "<h2>Summary</h2><dl>"
        + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in summary.items()) + "</dl>",
        '<div id="job-meta"><p class="muted">' + "; ".join(f"{html.escape(k)} {html.escape(str(v))}"
                                                          for k, v in meta.items())
        + "</p><details><summary>the job's spec</summary><pre>" + html.escape(json.dumps(spec, indent=1))
        + "</pre></details></div>",
        "<h2>Tracks</h2>" + (_img(tracks_png, "the tracks of every anomaly") if tracks_png else
                             '<p class="muted">no anomalies</p>'),
        f"<h2>Anomalies ({len(anomalies)})</h2>" + _table(anomalies, columns, ("first_tag", "last_tag", "start",
                                                                               "end")),
        "<h2>Anomalies step by step</h2>" + ("".join(
            f'<div class="panel" id="anomaly-{aid}"><b>anomaly {aid}</b> <span class="muted">{html.escape(caption)}'
            f"</span><br>{_img(png, f'anomaly {aid} at each step where it exists')}</div>" for aid, caption, png in
            panels) or '<p class="muted">no anomalies</p>'),
        "<h2>Files</h2><ul class=\"files\">" + "".join(
            f'<li><a href="{html.escape(name)}">{html.escape(name)}</a></li>' for name in files) + "</ul>",
        '<h2>Log</h2><div id="job-log"><pre>' + html.escape(json.dumps(log, indent=1, default=str)) + "</pre></div>",
        "</body></html>",
    ]
    Path(path).write_text("\n".join(p for p in parts if p), encoding="utf-8")


RUN_PARTS = re.compile(r'<div id="job-(?:meta|log)">.*?</div>', re.S)


def data_of(text: str, job_id: int | None) -> str:
    """A report's data: without ``#job-meta`` and ``#job-log``, the job id made neutral."""
    text = RUN_PARTS.sub("", text)
    if job_id is not None:
        text = re.sub(rf'(href="|>){job_id}-', r"\1J-", text)
        text = re.sub(rf"\bjob {job_id}\b", "job J", text)
    return text
