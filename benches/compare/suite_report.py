#!/usr/bin/env python3
"""The report of benches/compare/suite.sh: markdown tables (median, min – max,
ratio to quipu) and PNG charts from one results folder.

    python3 benches/compare/suite_report.py RESULTS [--charts DIR] [--splice BENCHMARKS.md] [--check]

RESULTS holds hyperfine's <operation>.<tool>.json, checks.txt (one line per
restore compared with its source), ingest-*.json, queries/ and machine.txt,
and compaction.csv when the optional step `compaction` ran (its section and
chart come from compaction_report.py).
--charts DIR writes compare-*.png there (matplotlib); --splice FILE
replaces the text between the suite's markers in FILE (adding the section
at the end the first time) instead of printing; --check exits non-zero,
naming what is missing, unless every tool ran every operation, every
restore was found equal to its source and the ingest and query results are
whole. Charts are referred to as img/<name> (docs/img beside BENCHMARKS.md).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import compaction_report
from report_common import Results, fmt, ratio, span

BEGIN = "<!-- benches/compare/suite.sh: begin (generated; edits are overwritten) -->"
END = "<!-- benches/compare/suite.sh: end -->"

TOOLS = [
    ("quipu-link", "quipu, link mode"),
    ("quipu-copy", "quipu, copy mode"),
    ("restic", "restic"),
    ("borg-none", "borg, compression none"),
    ("borg-lz4", "borg, compression lz4"),
    ("rsync", "`rsync -a` + `sync`"),
    ("cp", "`cp -r` + `sync`"),
    ("cp-al", "`cp -al` + `sync`"),
]
LABEL = dict(TOOLS)
# Operations on the 64-segment set, then on the 10,000 small segments, and
# the tools that have each (cp, cp -al and rsync keep no checksums to verify).
OPERATIONS = [
    ("first", "First backup into an empty repository", [t for t, _ in TOOLS]),
    ("again", "Second backup, nothing changed", [t for t, _ in TOOLS]),
    ("plus", "Backup after 1% new data (one more segment)", [t for t, _ in TOOLS]),
    ("restore", "Restore of the first backup into an empty folder", [t for t, _ in TOOLS]),
    ("verify", "Verify the first backup (every byte read and checked)",
     ["quipu-link", "quipu-copy", "restic", "borg-none", "borg-lz4"]),
    ("many_first", "10,000 small segments: first backup", [t for t, _ in TOOLS]),
    ("many_restore", "10,000 small segments: restore", [t for t, _ in TOOLS]),
]
COMMANDS = """How each tool is run (one process per run; every peer's repository or copy on the same disk):

- quipu: `backup_set backup --mode link|copy` (examples/backup_set.rs: opens the engine and a
  `BackupService`, one full backup, exits; a hot backup of a live engine), `quipu restore
  --from-repo R --backup first --into T --mode link|copy` (offline restore, durable when it
  returns), `quipu backup verify first` against `quipu serve` (every object re-hashed).
- restic: `restic backup`, `restic restore latest` + `sync`, `restic check --read-data`
  (repository v2 defaults: encrypted, compression auto).
- borg: `borg create --compression none|lz4` into a repository made with `--encryption none`,
  `borg extract` + `sync`, `borg check --verify-data`.
- rsync: `rsync -a SET/ DST/` + `sync` (a second run copies only what changed), restore
  `rsync -a DST/ T/` + `sync`.
- cp: every backup a whole new `cp -r` + `sync`; restore `cp -r` + `sync`.
- cp -al: every backup a new tree of hard links (`cp -al` + `sync`); restore another one.
  Like quipu's link mode it shares the files' inodes: a link is not a second copy of the bytes.
- 1% new data: every run starts from the repository as the first backup left it (quipu, restic:
  hard-linked copy, as neither ever rewrites a file; borg: a real copy); rsync starts from its
  first copy; cp and cp -al make a whole new copy.
- No time includes preparing a run (emptying targets, resetting repositories, dropping the
  page cache)."""


def hyperfine_table(res, op, tools):
    refs = [("÷ quipu link", f"{op}.quipu-link"), ("÷ quipu copy", f"{op}.quipu-copy")]
    head = ["tool", "median", "min – max"] + [t for t, _ in refs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for tool in tools:
        t = res.timing(f"{op}.{tool}")
        if t is None:
            continue
        cells = [LABEL[tool], f"**{fmt(t['median'])}**", span(t)]
        cells += [ratio(t, res.timing(ref)) for _, ref in refs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_json(path):
    return json.loads(path.read_text()) if path.exists() else None


def ingest_rows(folder):
    """One dict per ingest case (key, label, rows, secs, sizes, ack), and the peers' file."""
    out = []
    for key, label in (("quipu-lp", "quipu, line protocol (`write_lp`, 10,000-line requests)"),
                       ("quipu-arrow", "quipu, Arrow (`write_batch`, 10,000-row batches)")):
        d = load_json(folder / f"ingest-{key}.json")
        if d and d["runs"]:
            out.append({"key": key, "label": label, "rows": d["rows"], "secs": [r["total_s"] for r in d["runs"]],
                        "sizes": [r["bytes"] for r in d["runs"]], "ack": [r["acknowledged_s"] for r in d["runs"]]})
    peers = load_json(folder / "ingest-peers.json")
    labels = {"pyarrow": "pyarrow, Parquet + zstd (arrival order)",
              "pyarrow sorted": "pyarrow, Parquet + zstd, sorted by host and time first (Parquet's best case)",
              "duckdb": "DuckDB, its own format (`CREATE TABLE AS`)"}
    for key, runs in (peers or {}).get("tools", {}).items():
        if runs:
            out.append({"key": key, "label": labels.get(key, key), "rows": peers["rows"],
                        "secs": [r["total_s"] for r in runs], "sizes": [r["bytes"] for r in runs], "ack": None})
    return out, peers


def ingest_table(rows):
    lines = ["| writer | rows/s (median) | min – max | writer's time ÷ quipu Arrow's | bytes per row |"
             " quipu: all acknowledged (median) |",
             "|---|---|---|---|---|---|"]
    ref = next((statistics.median(r["secs"]) for r in rows if r["key"] == "quipu-arrow"), None)
    for r in rows:
        n, secs = r["rows"], r["secs"]
        med = statistics.median(secs)
        rel = f"{med / ref:.3g}×" if ref else "–"
        lines.append(f"| {r['label']} | **{n / med / 1e6:.2f}M** | {n / max(secs) / 1e6:.2f}M – {n / min(secs) / 1e6:.2f}M"
                     f" | {rel} | {statistics.median(r['sizes']) / n:.2f} |"
                     f" {fmt(statistics.median(r['ack'])) if r['ack'] else '–'} |")
    return "\n".join(lines)


def query_results(folder):
    q = folder / "queries"
    quipu = load_json(q / "quipu-1.json") or []
    duck = load_json(q / "duckdb-1.json") or {}
    names = [e["name"] for e in load_json(q / "queries.json") or []]
    by = lambda entries: {e["name"]: e for e in entries}
    return names, by(quipu), by(duck.get("parquet", [])), duck


def stats(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times)} if times else None


def query_table(names, quipu, duck):
    lines = ["| query | rows | quipu median | min – max | DuckDB on Parquet median | min – max | DuckDB ÷ quipu |",
             "|---|---|---|---|---|---|---|"]
    for n in names:
        if n not in quipu or n not in duck:
            continue
        a, b = stats(quipu[n]["times_s"]), stats(duck[n]["times_s"])
        lines.append(f"| {n} | {quipu[n]['rows']:,} | **{fmt(a['median'])}** | {span(a)} | **{fmt(b['median'])}** |"
                     f" {span(b)} | {ratio(b, a)} |")
    return "\n".join(lines)


def charts(res, folder, ingest, names, quipu, duck):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    colour = lambda tool: "#1f6f8b" if tool.startswith("quipu") else "#b0b0b0"

    def bars(ax, op, title, tools):
        got = [(t, res.timing(f"{op}.{t}")) for t in tools]
        got = [(t, x) for t, x in got if x]
        if not got:
            ax.set_visible(False)
            return
        y = range(len(got))
        med = [x["median"] for _, x in got]
        err = [[x["median"] - x["min"] for _, x in got], [x["max"] - x["median"] for _, x in got]]
        ax.barh(list(y), med, xerr=err, color=[colour(t) for t, _ in got], capsize=2)
        ax.set_yticks(list(y), [LABEL[t].replace("`", "") for t, _ in got], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("seconds (median; bars: min – max; log scale)", fontsize=8)
        ax.set_title(title, fontsize=9)

    written = []
    for name, ops in (("compare-backup.png", OPERATIONS[:5]), ("compare-many.png", OPERATIONS[5:])):
        fig, axes = plt.subplots(len(ops), 1, figsize=(8, 2.3 * len(ops)), squeeze=False)
        for ax, (op, title, tools) in zip(axes[:, 0], ops):
            bars(ax, op, title, tools)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        written.append(name)
    rows, _ = ingest
    if rows:
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 0.6 * len(rows) + 1.5))
        short = {"quipu-lp": "quipu, line protocol", "quipu-arrow": "quipu, Arrow", "pyarrow": "pyarrow Parquet",
                 "pyarrow sorted": "pyarrow Parquet, sorted", "duckdb": "DuckDB"}
        labels = [short.get(r["key"], r["key"]) for r in rows]
        c = [colour(r["key"]) for r in rows]
        a.barh(labels, [r["rows"] / statistics.median(r["secs"]) / 1e6 for r in rows], color=c)
        a.set_xlabel("million rows/s to durable, final form (median)", fontsize=8)
        b.barh(labels, [statistics.median(r["sizes"]) / r["rows"] for r in rows], color=c)
        b.set_xlabel("bytes per row on disk", fontsize=8)
        for ax in (a, b):
            ax.invert_yaxis()
            ax.tick_params(labelsize=8)
        b.set_yticks([])
        fig.suptitle("Ingest of the TSBS day", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / "compare-ingest.png", dpi=100)
        plt.close(fig)
        written.append("compare-ingest.png")
    shown = [n for n in names if n in quipu and n in duck]
    if shown:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        x = range(len(shown))
        ax.bar([i - 0.2 for i in x], [statistics.median(quipu[n]["times_s"]) * 1e3 for n in shown], 0.4,
               label="quipu", color=colour("quipu"))
        ax.bar([i + 0.2 for i in x], [statistics.median(duck[n]["times_s"]) * 1e3 for n in shown], 0.4,
               label="DuckDB on Parquet", color=colour(""))
        ax.set_xticks(list(x), shown, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median, log scale)", fontsize=8)
        ax.legend(fontsize=8)
        ax.set_title("TSBS queries", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / "compare-queries.png", dpi=100)
        plt.close(fig)
        written.append("compare-queries.png")
    if compaction_report.chart(res.folder, folder / "compaction-peak-rss.png"):
        written.append("compaction-peak-rss.png")
    return written


def check(res, folder, ingest, names, quipu, duck):
    problems = []
    for op, _, tools in OPERATIONS:
        for tool in tools:
            t = res.timing(f"{op}.{tool}")
            if t is None or t["n"] < 1:
                problems.append(f"{op}.{tool}: no timed run")
    checks = (folder / "checks.txt").read_text().split("\n") if (folder / "checks.txt").exists() else []
    checked = {line.split()[0] for line in checks if line.strip()}
    for op in ("restore", "many_restore"):
        for tool, _ in TOOLS:
            if f"{op}.{tool}" not in checked:
                problems.append(f"{op}.{tool}: the restore was not found equal to its source")
    rows, _ = ingest
    have = {r["key"] for r in rows}
    for want in ("quipu-lp", "quipu-arrow", "pyarrow", "pyarrow sorted", "duckdb"):
        if want not in have:
            problems.append(f"ingest: no runs of {want}")
    if not names:
        problems.append("queries: no results")
    for n in names:
        if n not in quipu or n not in duck:
            problems.append(f"queries: {n} did not run on both sides")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--charts")
    ap.add_argument("--splice")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    folder = Path(args.results)
    res = Results(folder)
    machine = res.machine()
    ingest = ingest_rows(folder)
    names, quipu, duck, duck_meta = query_results(folder)
    written = charts(res, Path(args.charts), ingest, names, quipu, duck) if args.charts else []

    out = []
    say = out.append
    say("One run; every tool of an operation runs back to back, so the ratios come from the same minutes.")
    say("")
    say(f"Machine: {machine.get('cpus', '?')} CPUs, {machine.get('memory', '?')}, {machine.get('filesystem', '?')},"
        f" kernel {machine.get('kernel', '?')}.  ")
    say(f"Page cache: {machine.get('cache', '?')}. {machine.get('runs', '')} (hyperfine).  ")
    say(f"Tools: {machine.get('tools', '?')}.  ")
    steps = (folder / "steps.txt").read_text().split("\n") if (folder / "steps.txt").exists() else []
    steps = [line.split() for line in steps if line.strip()]
    if steps:
        say("quipu commit per step: " + ", ".join(f"{s[0]} {s[1]} ({s[2]})" for s in steps if len(s) >= 3) + ".  ")
    say(f"Set: {machine.get('set', '?')}.  ")
    say(f"Small files: {machine.get('many', '?')}.  ")
    say(f"TSBS: {machine.get('tsbs', '?')}; load average {machine.get('load', '?')}.")
    say("")
    say("### Backup, restore and verify")
    say("")
    say("Ratios are the tool's median divided by quipu's: above 1, quipu is faster.")
    say("")
    for op, title, tools in OPERATIONS:
        if op == "many_first":
            say("### 10,000 small segments")
            say("")
        say(f"{title}:")
        say("")
        say(hyperfine_table(res, op, tools))
        say("")
    say(COMMANDS)
    say("")
    for name in written:
        if name in ("compare-backup.png", "compare-many.png"):
            say(f"![{name}](img/{name})")
            say("")
    rows, peers = ingest
    say("### Ingest")
    say("")
    say("The TSBS day, durable and in its final form: quipu acknowledges every request after its WAL fsync,"
        " then flushes and compacts (the time stops when the compacted segments are written); pyarrow's file"
        " is fsynced; DuckDB's database is closed (checkpointed). pyarrow, DuckDB and quipu's Arrow case are"
        " given the same Arrow table, in memory before the clock starts, in TSBS's arrival order (time, then"
        " host); quipu's line protocol case parses the text `quipu gen tsbs` printed."
        + (f" pyarrow {peers['versions']['pyarrow']}, DuckDB {peers['versions']['duckdb']}"
           f" ({peers['threads']} threads)." if peers else ""))
    say("")
    if rows:
        say(ingest_table(rows))
        say("")
    if "compare-ingest.png" in written:
        say("![compare-ingest.png](img/compare-ingest.png)")
        say("")
    say("### Queries")
    say("")
    say("The five TSBS queries of issue 6 on the TSBS day: quipu's SQL in-process against DuckDB over quipu's"
        " Parquet export of the same rows, the identical SQL text; each query once untimed, then timed;"
        " time = planning and the whole result. DuckDB's results are checked against quipu's."
        + (f" DuckDB {duck_meta.get('duckdb_version', '?')} ({duck_meta.get('threads', '?')} threads)." if duck_meta else ""))
    say("")
    if names:
        say(query_table(names, quipu, duck))
        say("")
    if "compare-queries.png" in written:
        say("![compare-queries.png](img/compare-queries.png)")
        say("")
    if (folder / "compaction.csv").exists():
        say("### Peak memory from ingest to fully compacted")
        say("")
        say(compaction_report.section(folder))
        if "compaction-peak-rss.png" in written:
            say("![compaction-peak-rss.png](img/compaction-peak-rss.png)")
            say("")
    text = "\n".join(out).rstrip() + "\n"

    if args.splice:
        path = Path(args.splice)
        doc = path.read_text()
        section = f"{BEGIN}\n{text}{END}"
        if BEGIN in doc and END in doc:
            doc = doc[:doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip() + "\n\n## Side by side: quipu against the tools people use instead (issue 7)\n\n" + section + "\n"
        path.write_text(doc)
    else:
        sys.stdout.write(text)
    if args.check:
        problems = check(res, folder, ingest, names, quipu, duck)
        if problems:
            sys.exit("the suite is not whole:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
