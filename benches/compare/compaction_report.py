#!/usr/bin/env python3
"""The report of benches/compare/compaction.sh: the peak memory of `quipu
serve` from ingest to fully compacted, as a markdown table and PNG charts.

    python3 benches/compare/compaction_report.py RESULTS [--chart PNG] [--timeline PNG] [--check [SCENARIO ...]]

RESULTS holds compaction.csv (one line per scenario and run; the table and
the chart show the median of a scenario's runs, and the range of its peak
RSS when there are several), compaction-timeline/
(<scenario>.csv, a sample every 0.5 s) and compaction-machine.txt. The table
is printed; --chart draws peak RSS against rows (the TSBS days of 1,000, 2,000
and 4,000 hosts as a line; the 10-day backfill in time and in series order
and the million series as points); --timeline draws RSS over time per
scenario; --check exits non-zero unless every named scenario (all of them
when none is named) has lines and every run compacted all its rows.
"""

import argparse
import csv
import statistics
import sys
from pathlib import Path

SCENARIOS = [
    ("tsbs-1000x1d", "TSBS day, 1,000 hosts"),
    ("tsbs-2000x1d", "TSBS day, 2,000 hosts"),
    ("tsbs-4000x1d", "TSBS day, 4,000 hosts"),
    ("tsbs-100x10d-time", "TSBS 100 hosts × 10 days, time order"),
    ("tsbs-100x10d-series", "TSBS 100 hosts × 10 days, series order"),
    ("series-1m", "1M series × 3 points"),
]
LABEL = dict(SCENARIOS)
DAYS = ["tsbs-1000x1d", "tsbs-2000x1d", "tsbs-4000x1d"]


TEXT = ("scenario", "spec", "profile", "serve_flags")


def runs(folder):
    """The lines of compaction.csv by scenario (a list of runs each), numbers as floats."""
    path = Path(folder) / "compaction.csv"
    if not path.exists():
        return {}
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k not in TEXT:
                    try:
                        row[k] = float(v)
                    except (TypeError, ValueError):
                        row[k] = None
            out.setdefault(row["scenario"], []).append(row)
    return out


def load(folder):
    """One line per scenario: the median of each number over its runs (None
    when a run lacks it), with `runs` and the peak RSS's `peak_min`/`peak_max`."""
    out = {}
    for key, lines in runs(folder).items():
        row = dict(lines[0])
        for k in row:
            if k not in TEXT:
                values = [r[k] for r in lines]
                row[k] = None if any(v is None for v in values) else statistics.median(values)
        peaks = [r["peak_rss_mib"] for r in lines if r["peak_rss_mib"] is not None]
        row["runs"] = len(lines)
        row["peak_min"] = min(peaks) if peaks else None
        row["peak_max"] = max(peaks) if peaks else None
        out[key] = row
    return out


def peak(r):
    """The peak RSS cell: the median, and the range when there were several runs."""
    cell = f"**{num(r['peak_rss_mib'])}**"
    if r["runs"] > 1:
        cell += f" ({num(r['peak_min'])}-{num(r['peak_max'])}, {r['runs']} runs)"
    return cell


def machine(folder):
    path = Path(folder) / "compaction-machine.txt"
    text = path.read_text() if path.exists() else ""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def num(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def rate(x):
    if x is None:
        return "–"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e3 else f"{x:.0f}"


def table(rows, smoke=False):
    """smoke: the scenarios by name only (their sizes are not what the labels say)."""
    lines = ["| scenario | rows | write s | to compacted s | peak RSS MiB | by the end of the write MiB"
             " | largest anonymous RSS MiB | RSS before the write MiB | B/row on disk | rows/s written"
             " | rows/s to compacted |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, label in SCENARIOS:
        r = rows.get(key)
        if r is None:
            continue
        name = f"`{key}`" if smoke else f"{label} (`{key}`)"
        lines.append(f"| {name} | {num(r['rows'])} | {num(r['write_s'], 1)} | {num(r['compacted_s'], 1)}"
                     f" | {peak(r)} | {num(r['peak_rss_write_mib'])}"
                     f" | {num(r['peak_anon_sampled_mib'])} | {num(r.get('start_rss_mib'))} | {num(r['bytes_per_row'], 2)}"
                     f" | {rate(r['write_rows_per_s'])} | {rate(r['rows_per_s'])} |")
    return "\n".join(lines)


def section(folder):
    """The markdown of the whole report (also what suite_report.py includes)."""
    rows = load(folder)
    m = machine(folder)
    out = []
    say = out.append
    say("Peak memory of `quipu serve` from ingest to fully compacted: a new data folder per scenario, the"
        " line protocol written with `quipu write --db bench` (10,000-line gzip requests, from the same"
        " machine), then `/metrics`"
        " polled every 0.5 s until no row is left in the buffer or in gen0 files and the compacted files hold"
        " every row; to compacted counts from the start of the write. Peak RSS is the server's VmHWM then"
        " (resident pages of mapped files count: the binary's, the segments'); \"by the end of the write\" is"
        " VmHWM when the write was seen to return; the largest anonymous RSS is the largest RssAnon of the"
        " samples (heap only, but sampled: a peak between two samples is missed)."
        " B/row: the compacted segment files' bytes per row; rows/s: rows over the write's seconds and over"
        " the seconds to fully compacted. A scenario run several times (RUNS) shows the median of its runs"
        " and the range of their peak RSS.")
    say("")
    if m:
        say(f"Machine: {m.get('cpus', '?')} CPUs, {m.get('memory', '?')}, {m.get('filesystem', '?')},"
            f" kernel {m.get('kernel', '?')}; load average {m.get('load', '?')}.  ")
        say(f"quipu: {m.get('quipu', '?')}; `{m.get('serve', '?')}`.  ")
    specs = [f"`{k}`: {rows[k]['spec']}" for k, _ in SCENARIOS if k in rows]
    if specs:
        say("Data: " + "; ".join(specs) + ".")
    say("")
    say(table(rows, smoke=m.get("smoke") == "1"))
    extra = []
    for key, _ in SCENARIOS:
        r = rows.get(key)
        if r:
            extra.append(f"`{key}`: {num(r['flushes'])} flushes, {num(r['compactions'])} compactions,"
                         f" {num(r['write_stalls'])} write stalls, at most {num(r['max_gen0_files'])} gen0 files,"
                         f" {num(r['compacted_files'])} compacted files")
    if extra:
        say("")
        say("Counters at fully compacted: " + "; ".join(extra) + ".")
    return "\n".join(out).rstrip() + "\n"


def chart(folder, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load(folder)
    if not rows:
        return False
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    days = [rows[k] for k in DAYS if k in rows]
    if days:
        x = [r["rows"] / 1e6 for r in days]
        ax.plot(x, [r["peak_rss_mib"] for r in days], "o-", color="#1f6f8b", label="TSBS day, 1x/2x/4x hosts: peak")
        ax.plot(x, [r["peak_rss_write_mib"] for r in days], "o--", color="#1f6f8b", alpha=0.5,
                label="the same, by the end of the write")
        for r in days:
            ax.annotate(r["scenario"], (r["rows"] / 1e6, r["peak_rss_mib"]), textcoords="offset points",
                        xytext=(4, 6), fontsize=7)
    marks = [("tsbs-100x10d-time", "s", "#d17a22"), ("tsbs-100x10d-series", "D", "#8b1f5f"),
             ("series-1m", "^", "#3a8b1f")]
    for key, marker, colour in marks:
        r = rows.get(key)
        if r:
            ax.plot([r["rows"] / 1e6], [r["peak_rss_mib"]], marker, color=colour, markersize=8,
                    label=f"{LABEL[key]}: peak")
            ax.plot([r["rows"] / 1e6], [r["peak_rss_write_mib"]], marker, color=colour, markersize=8,
                    fillstyle="none", alpha=0.6, label="(hollow: by the end of the write)" if key == "series-1m" else None)
    idle = sorted(r["start_rss_mib"] for r in rows.values() if r.get("start_rss_mib"))
    if idle:
        ax.axhline(idle[len(idle) // 2], color="grey", lw=0.8, ls=":", label="the server before the write")
    ax.set_xlabel("rows written (millions)", fontsize=8)
    ax.set_ylabel("peak RSS of quipu serve (MiB, VmHWM)", fontsize=8)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    m = machine(folder)
    ax.set_title("Peak memory from ingest to fully compacted"
                 + (" (smoke sizes)" if m.get("smoke") == "1" else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def timeline(folder, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    shown = [(k, folder / "compaction-timeline" / f"{k}.csv") for k, _ in SCENARIOS]
    shown = [(k, p) for k, p in shown if p.exists()]
    if not shown:
        return False
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = 2 if len(shown) > 1 else 1
    nrows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    for ax, (key, p) in zip(axes.flat, shown):
        with p.open(newline="") as f:
            samples = list(csv.DictReader(f))
        val = lambda r, k: float(r[k]) if r[k] not in ("", "NA") else float("nan")
        t = [val(r, "t_s") for r in samples]
        ax.plot(t, [val(r, "rss_kib") / 1024 for r in samples], color="#1f6f8b", label="RSS")
        ax.plot(t, [val(r, "anon_kib") / 1024 for r in samples], color="#1f6f8b", ls=":", label="anonymous RSS")
        ends = [val(r, "t_s") for r in samples if r["phase"] == "compact"]
        if ends:
            ax.axvline(ends[0], color="grey", lw=0.8, ls="--")
        ax.set_ylim(bottom=0)
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("s since the write started (dashed: write returned)", fontsize=7)
        ax.set_ylabel("MiB", fontsize=7)
        twin = ax.twinx()
        twin.plot(t, [val(r, "gen0_files") for r in samples], color="#d17a22", lw=0.8, label="gen0 files")
        twin.tick_params(labelsize=7, colors="#d17a22")
        twin.set_ylim(bottom=0)
        if ax is axes.flat[0]:
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = twin.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def check(folder, names):
    by_scenario = runs(folder)
    problems = []
    for name in names or [k for k, _ in SCENARIOS]:
        lines = by_scenario.get(name)
        if not lines:
            problems.append(f"{name}: no result")
        for r in lines or []:
            if not r["rows"] or r["compacted_s"] is None or r["file_bytes"] is None or r["file_bytes"] <= 0:
                problems.append(f"{name} (run {num(r.get('run') or 1)}): not fully compacted")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--chart")
    ap.add_argument("--timeline")
    ap.add_argument("--check", nargs="*")
    args = ap.parse_args()
    if args.chart:
        chart(args.results, args.chart)
    if args.timeline:
        timeline(args.results, args.timeline)
    sys.stdout.write(section(args.results))
    if args.check is not None:
        problems = check(args.results, args.check)
        if problems:
            sys.exit("compaction results are not whole:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
