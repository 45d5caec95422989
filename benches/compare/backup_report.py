#!/usr/bin/env python3
"""Markdown report of benches/compare/backup.sh: reads the hyperfine JSON
files (<case>.json), quipu's own start + wait times (<case>.csv, one line per
run: mode,files,bytes,added_bytes,seconds) and machine.txt from RESULTS.

    python3 benches/compare/backup_report.py RESULTS > report.md
"""

import json
import statistics
import sys
from pathlib import Path

res = Path(sys.argv[1])


def timing(case):
    path = res / f"{case}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())["results"][0]
    return {"median": r["median"], "min": r["min"], "max": r["max"], "n": len(r["times"])}


def inner(case):
    """Median, min and max of quipu's start + wait, timed runs only (the
    first line of each log is hyperfine's warm-up, when there is one)."""
    path = res / f"{case}.csv"
    t = timing(case)
    if not path.exists() or t is None:
        return None
    secs = [float(line.split(",")[4]) for line in path.read_text().split()]
    secs = secs[-t["n"]:]
    return {"median": statistics.median(secs), "min": min(secs), "max": max(secs)}


def fmt(s):
    if s is None:
        return "–"
    if s < 1:
        return f"{s * 1e3:.3g} ms" if s >= 0.01 else f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def span(t):
    return f"{fmt(t['min'])} – {fmt(t['max'])}" if t else "–"


def ratio(a, b):
    if not a or not b:
        return "–"
    r = a["median"] / b["median"]
    return f"{r:.3g}×" if r < 100 else f"{r:.0f}×"


def table(rows, refs):
    """rows: (label, case); refs: (column title, case) to divide by."""
    head = ["", "median", "min – max", "quipu start+wait median (min – max)"] + [t for t, _ in refs]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, case in rows:
        t = timing(case)
        if t is None:
            continue
        i = inner(case)
        cells = [label, f"**{fmt(t['median'])}**", span(t), f"{fmt(i['median'])} ({span(i)})" if i else ""]
        cells += [ratio(t, timing(ref)) for _, ref in refs]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


machine_txt = res / "machine.txt"
machine = dict(
    line.split("=", 1) for line in (machine_txt.read_text() if machine_txt.exists() else "").splitlines() if "=" in line
)
print("Machine: " + machine.get("cpus", "?") + " CPUs, " + machine.get("memory", "?") + ", "
      + machine.get("filesystem", "?") + ", kernel " + machine.get("kernel", "?") + ".  ")
print("Page cache: " + machine.get("cache", "?") + ". " + machine.get("runs", "") + " (hyperfine).  ")
print("Tools: " + machine.get("tools", "?") + ".  ")
print("Set: " + machine.get("set", "?") + "; load average " + machine.get("load", "?") + ".")
print()

print("First backup of 64 × 16 MiB segments (1 GiB) into an empty repository on the same disk:")
print()
first = [
    ("quipu link mode (`backup_set backup`: one process)", "first_quipu_link"),
    ("quipu copy mode (same)", "first_quipu_copy"),
    ("quipu link, `quipu backup create --wait` → `quipu serve`", "first_cli_link"),
    ("quipu copy, `quipu backup create --wait` → `quipu serve`", "first_cli_copy"),
    ("`cp -r` + `sync`", "first_cp"),
    ("`restic backup` (repository v2 defaults)", "first_restic"),
    ("`borg create --compression none`, no encryption", "first_borg"),
]
print(table(first, [("÷ quipu link", "first_quipu_link"), ("÷ quipu copy", "first_quipu_copy")]))
print()

print("Second backup, nothing changed:")
print()
again = [
    ("quipu link mode (`backup_set backup`: one process)", "again_quipu_link"),
    ("quipu copy mode (same)", "again_quipu_copy"),
    ("quipu link, `quipu backup create --wait` → `quipu serve`", "again_cli_link"),
    ("quipu copy, `quipu backup create --wait` → `quipu serve`", "again_cli_copy"),
    ("`restic backup`", "again_restic"),
    ("`borg create --compression none`", "again_borg"),
    ("`rsync -a` + `sync` (for reference)", "again_rsync"),
]
print(table(again, [("÷ quipu link", "again_quipu_link"), ("÷ quipu copy", "again_quipu_copy")]))
print()

print("Link mode, first backup, by files and bytes:")
print()
scale = [("64 files × 16 MiB (1 GiB)", "scale_link_64x16"), ("64 files × 1 MiB (64 MiB)", "scale_link_64x1"),
         ("640 files × 1.6 MiB (1 GiB)", "scale_link_640x1.6")]
print(table(scale, [("÷ 64 × 16 MiB", "scale_link_64x16")]))
print()

plus = [("quipu link", "plus_quipu_link"), ("quipu copy", "plus_quipu_copy"), ("`restic backup`", "plus_restic"),
        ("`borg create`", "plus_borg")]
if timing("plus_restic"):
    print("Second backup after 1% new data (one more 10 MiB segment), one run each:")
    print()
    print(table(plus, [("÷ quipu copy", "plus_quipu_copy")]))
    print()


def med(case, own=False):
    t = inner(case) if own else timing(case)
    return t["median"] if t else None


def verdict(ok):
    return "**met**" if ok else "**not met**"


def pct(a, b):
    return f"{100 * a / b:.1f}%" if a and b else "–"


def times(a, b):
    return f"{b / a:.0f}×" if a and b else "–"


print("Targets (medians of this run). The verdict is on `quipu backup create --wait` against a running")
print("`quipu serve` (how a backup is taken in production: the engine is open); the one-process")
print("`backup_set backup` (which also opens the engine) and the server-side hot path (start + wait) are")
print("given beside it.")
print()
print("| target | `quipu backup create --wait` → serve | one process | start + wait alone | |")
print("|---|---|---|---|---|")
s16, s1, s640 = (med(f"scale_link_{s}", own=True) for s in ("64x16", "64x1", "640x1.6"))
if s16 and s1 and s640:
    ok = s640 / s16 >= 2 and s16 / s1 <= 1.5
    print(f"| link: time grows with files, not bytes | | | 16× the bytes: {s16 / s1:.2f}×; "
          f"10× the files: {s640 / s16:.2f}× | {verdict(ok)} |")
restic = med("first_restic")
cli, one, own = med("first_cli_link"), med("first_quipu_link"), med("first_quipu_link", own=True)
if cli and restic:
    print(f"| link: ≥ 100× faster than `restic backup` | {times(cli, restic)} | {times(one, restic)} "
          f"| {times(own, restic)} | {verdict(restic / cli >= 100)} |")
cp, borg = med("first_cp"), med("first_borg")
cli, one, own = med("first_cli_copy"), med("first_quipu_copy"), med("first_quipu_copy", own=True)
if cli and cp:
    print(f"| copy: within 1.2× of `cp -r` + `sync` | {cli / cp:.2f}× | {one / cp:.2f}× | {own / cp:.2f}× "
          f"| {verdict(cli / cp <= 1.2)} |")
if cli and restic and borg:
    print(f"| copy: ≥ 2× faster than restic and borg | restic {restic / cli:.1f}×, borg {borg / cli:.1f}× "
          f"| restic {restic / one:.1f}×, borg {borg / one:.1f}× | "
          f"restic {restic / own:.1f}×, borg {borg / own:.1f}× "
          f"| {verdict(restic / cli >= 2 and borg / cli >= 2)} |")
ar = med("again_restic")
for mode in ("link", "copy"):
    cli, one, own = med(f"again_cli_{mode}"), med(f"again_quipu_{mode}"), med(f"again_quipu_{mode}", own=True)
    if cli and ar:
        print(f"| nothing changed ({mode}): ≤ 5% of restic's no-change run | {pct(cli, ar)} | {pct(one, ar)} "
              f"| {pct(own, ar)} | {verdict(cli / ar <= 0.05)} |")
