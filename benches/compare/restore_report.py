#!/usr/bin/env python3
"""Markdown report of benches/compare/restore.sh: reads the hyperfine JSON
files (<case>.json), quipu's own times (<case>.csv: one line per run,
`kind,mode,files,bytes,seconds,before,staging,rebuilding,swapping` from
`backup_set restore`, `what,files,seconds` from `backup_set open`) and
machine.txt from RESULTS.

    python3 benches/compare/restore_report.py RESULTS > report.md
"""

import sys

from report_common import Results, fmt, verdict

res = Results(sys.argv[1])
timing = res.timing

# Columns of a `backup_set restore` log line.
SECONDS, BEFORE, STAGING, REBUILDING, SWAPPING = 4, 5, 6, 7, 8


def inner(case, col=SECONDS):
    """Median, min and max of one column of quipu's own log."""
    rows = res.own_rows(case)
    if rows and len(rows[0]) == 3:  # `backup_set open`: what,files,seconds
        col = 2
    return res.own(case, col)


def table(rows, refs, own_title="quipu's own time, median (min – max)"):
    return res.table(rows, refs, own_title, inner)


def phases(rows):
    out = ["| | start_restore → staging | staging | rebuilding | swapping (+ end record) | start + wait |",
           "|---|---|---|---|---|---|"]
    for label, case in rows:
        cols = [inner(case, c) for c in (BEFORE, STAGING, REBUILDING, SWAPPING, SECONDS)]
        if cols[-1] is None:
            continue
        out.append("| " + " | ".join([label] + [fmt(c["median"]) if c else "–" for c in cols]) + " |")
    return "\n".join(out)


machine = res.machine()
res.print_machine(machine)
print("Set: " + machine.get("set", "?") + ".  ")
print("Many: " + machine.get("many", "?") + "; load average " + machine.get("load", "?") + ".")
print()

print("Restore of 64 × 16 MiB segments (1 GiB) into a new, empty folder on the same disk. quipu's own time:")
print("start_restore + wait_restore (live) or restore_into (offline) inside the process.")
print()
main = [
    ("quipu copy, `quipu restore start --wait` → `quipu serve` (empty)", "serve_copy"),
    ("quipu copy, one process (`backup_set restore`)", "live_copy"),
    ("quipu copy, offline `quipu restore --from-repo … --into …`", "offline_cli_copy"),
    ("quipu copy, offline, one process (`restore_into`)", "offline_copy"),
    ("quipu link, `quipu restore start --wait` → `quipu serve` (empty)", "serve_link"),
    ("quipu link, one process (`backup_set restore`)", "live_link"),
    ("quipu link, offline `quipu restore --from-repo … --into …`", "offline_cli_link"),
    ("quipu link, offline, one process (`restore_into`)", "offline_link"),
    ("`cp -r` (the copy-mode repository) + `sync`", "cp"),
    ("`restic restore latest` + `sync`", "restic"),
    ("`restic restore latest` (no sync)", "restic_nosync"),
    ("`borg extract` + `sync` (no encryption, no compression)", "borg"),
    ("`borg extract` (no sync)", "borg_nosync"),
]
print(table(main, [("÷ `cp -r` + `sync`", "cp"), ("÷ quipu copy (serve)", "serve_copy")]))
print()
print("Where a live restore's time goes (medians; `BackupConfig::restore_hook` timestamps; staging places")
print("every file, hashes copies, and opens each segment's header and footer):")
print()
print(phases([("copy, 64 × 16 MiB", "live_copy"), ("link, 64 × 16 MiB", "live_link"),
              ("link, 64 × 1 MiB", "link_64x1"), ("link, 640 × 1.6 MiB", "link_640x1.6"),
              ("link, 10,000 × 3.6 KB", "many_live_link")]))
print()

print("Link mode by files and bytes (one process):")
print()
scale = [("64 files × 16 MiB (1 GiB)", "live_link"), ("64 files × 1 MiB (64 MiB)", "link_64x1"),
         ("640 files × 1.6 MiB (1 GiB)", "link_640x1.6")]
print(table(scale, [("÷ 64 × 16 MiB", "live_link")], "start + wait, median (min – max)"))
print()

print("10,000 segments of about 3.6 KB (link mode):")
print()
many = [
    ("live restore, one process (`backup_set restore`)", "many_live_link"),
    ("offline `quipu restore --from-repo … --into …`", "many_offline_cli_link"),
    ("offline, one process (`restore_into`)", "many_offline_link"),
    ("`Engine::open` of the restored folder (`backup_set open`)", "many_open_engine"),
    ("`SegmentReader::open` of its 10,000 files, 4 threads", "many_open_segments"),
]
print(table(many, []))
print()


def med(case, col=None):
    t = timing(case) if col is None else inner(case, col)
    return t["median"] if t else None


def x(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


print("Targets (medians of this run):")
print()
print("| target | measured | | verdict |")
print("|---|---|---|---|")
cp, restic, borg = med("cp"), med("restic"), med("borg")
for label, cli, one, own in (
        ("live", "serve_copy", "live_copy", "live_copy"),
        ("offline", "offline_cli_copy", "offline_copy", "offline_copy")):
    c, o, s = med(cli), med(one), med(own, SECONDS)
    if c and cp:
        print(f"| copy ({label}): within 1.2× of `cp -r` + `sync` | {x(c, cp)} (`{cli}`) | "
              f"one process {x(o, cp)}; own time {x(s, cp)} | {verdict(c / cp <= 1.2)} |")
for label, cli in (("live", "serve_copy"), ("offline", "offline_cli_copy")):
    c = med(cli)
    if c and restic and borg:
        print(f"| copy ({label}): ≥ 2× faster than `restic restore` and `borg extract` | "
              f"restic {restic / c:.2f}×, borg {borg / c:.2f}× (both + `sync`) | without sync: restic "
              f"{x(med('restic_nosync'), c)}, borg {x(med('borg_nosync'), c)} "
              f"| {verdict(restic / c >= 2 and borg / c >= 2)} |")
s16, s1, s640 = med("live_link", SECONDS), med("link_64x1", SECONDS), med("link_640x1.6", SECONDS)
if s16 and s1 and s640:
    ok = s640 / s16 >= 2 and s16 / s1 <= 1.5
    print(f"| link: time grows with files, not bytes (start + wait) | 16× the bytes: {s16 / s1:.2f}×; "
          f"10× the files: {s640 / s16:.2f}× | one process: {x(med('live_link'), med('link_64x1'))}; "
          f"{x(med('link_640x1.6'), med('live_link'))} | {verdict(ok)} |")
m_own, m_one = med("many_live_link", SECONDS), med("many_live_link")
m_rebuild = med("many_live_link", REBUILDING)
m_stage, m_swap = med("many_live_link", STAGING), med("many_live_link", SWAPPING)
if m_own:
    print(f"| rebuild of 10,000 segments < 1 s | live link restore start + wait {fmt(m_own)} (staging, with the "
          f"10,000 footer opens, {fmt(m_stage)}; rebuilding {fmt(m_rebuild)}; swapping {fmt(m_swap)}) | "
          f"one process {fmt(m_one)}; offline CLI {fmt(med('many_offline_cli_link'))}; engine open "
          f"{fmt(med('many_open_engine'))} | {verdict(m_own < 1)} |")

# The load each case ran under (the machine may be shared).
cases_txt, load_txt = res.folder / "cases.txt", res.folder / "load.txt"
if cases_txt.exists() and load_txt.exists():
    ours = {"backup_set", "quipu", "hyperfine", "restic", "borg", "cp", "sync", "sh", "bash", "ps", "head", "awk",
            "sleep", "date", "cut", "python3", "find", "du", "rm"}
    samples = []
    for line in load_txt.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        others = []
        for p in parts[3:]:
            name, _, cpu = p.rpartition(":")
            if name and name not in ours and not name.startswith("kworker") and float(cpu or 0) >= 20:
                others.append(f"{name} {float(cpu):.0f}%")
        samples.append((float(parts[0]), float(parts[1]), others))
    print()
    print("Load during each case (1-minute load average, highest sample from 5 s before to 5 s after it; other processes seen using ≥ 20% of a CPU,"
          " by `ps`' lifetime average):")
    print()
    print("| case | load | others |")
    print("|---|---|---|")
    for line in cases_txt.read_text().splitlines():
        name, t0, t1 = line.split()
        inside = [s for s in samples if float(t0) - 5 <= s[0] <= float(t1) + 5]
        if not inside:
            continue
        seen = sorted({o for s in inside for o in s[2]})
        print(f"| {name} | {max(s[1] for s in inside):.2f} | {', '.join(seen[:4]) or '–'} |")
