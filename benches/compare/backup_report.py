#!/usr/bin/env python3
"""Markdown report of benches/compare/backup.sh: reads the hyperfine JSON
files (<case>.json), quipu's own start + wait times (<case>.csv, one line per
run: mode,files,bytes,added_bytes,seconds) and machine.txt from RESULTS.

    python3 benches/compare/backup_report.py RESULTS > report.md
"""

import sys

from report_common import Results, fmt, verdict

res = Results(sys.argv[1])
timing = res.timing


def inner(case):
    """Median, min and max of quipu's start + wait (column 5 of its log)."""
    return res.own(case, 4)


def table(rows, refs):
    return res.table(rows, refs, "quipu start+wait median (min – max)", inner)


machine = res.machine()
res.print_machine(machine)
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
