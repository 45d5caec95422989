"""The report of benches/compare/remote.sh: one markdown table per set
(time, MiB/s and objects/s of each tool, quipu's ratios), the issue's
targets checked, and with --charts DIR the chart compare-remote.png.

    python3 benches/compare/remote_report.py RESULTS [--charts DIR]
"""

import argparse
import json
from pathlib import Path

from report_common import Results, fmt, span, verdict

TOOLS = [("quipu", "quipu"), ("rclone", "rclone copy"), ("restic", "restic")]
CASES = [("push", "first push"), ("again", "nothing new"), ("pull", "pull / restore")]
TITLES = {"big": "big files", "small": "small files"}


def sets(res):
    return [json.loads(p.read_text()) for p in sorted(res.folder.glob("set-*.json"))]


def rate(t, s):
    mib = s["bytes"] / 2**20 / t["median"]
    objs = s["objects"] / t["median"]
    return f"{mib:.0f} MiB/s, {objs:,.0f} objects/s"


def table(res, s):
    label = s["label"]
    print(f"\n**{TITLES.get(label, label)}**: {s['data_files']:,} data files, "
          f"{s['objects']:,} objects of {s['bytes'] / 2**20:.1f} MiB in the repository\n")
    head = ["case"] + [name for _, name in TOOLS] + ["rclone ÷ quipu", "restic ÷ quipu"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case, title in CASES:
        times = {tool: res.timing(f"{label}.{case}_{tool}") for tool, _ in TOOLS}
        if not times["quipu"]:
            continue
        cells = [title]
        for tool, _ in TOOLS:
            t = times[tool]
            if not t:
                cells.append("–")
            elif case == "again":
                cells.append(f"**{fmt(t['median'])}** ({span(t)})")
            else:
                cells.append(f"**{fmt(t['median'])}** ({span(t)}; {rate(t, s)})")
        q = times["quipu"]["median"]
        for other in ("rclone", "restic"):
            t = times[other]
            cells.append(f"{t['median'] / q:.2f}×" if t else "–")
        print("| " + " | ".join(cells) + " |")
    return targets(res, label)


def targets(res, label):
    t = lambda case, tool: res.timing(f"{label}.{case}_{tool}")
    out = []
    if t("push", "quipu") and t("push", "rclone"):
        r = t("push", "rclone")["median"] / t("push", "quipu")["median"]
        out.append(f"first push at least as fast as rclone ({r:.2f}×): {verdict(r >= 1)}")
    if t("push", "quipu") and t("push", "restic"):
        r = t("push", "restic")["median"] / t("push", "quipu")["median"]
        out.append(f"first push at least 2× faster than restic ({r:.2f}×): {verdict(r >= 2)}")
    if t("again", "quipu") and t("again", "restic"):
        p = t("again", "quipu")["median"] / t("again", "restic")["median"] * 100
        out.append(f"nothing new at most 5% of restic's ({p:.1f}%): {verdict(p <= 5)}")
    print("\nTargets: " + "; ".join(out) + ".")
    return out


def chart(res, all_sets, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(len(all_sets), len(CASES), figsize=(11, 2.2 * len(all_sets)), squeeze=False)
    for row, s in zip(axes, all_sets):
        for ax, (case, title) in zip(row, CASES):
            got = [(name, res.timing(f"{s['label']}.{case}_{tool}")) for tool, name in TOOLS]
            got = [(n, t) for n, t in got if t]
            y = list(range(len(got)))
            ax.barh(y, [t["median"] for _, t in got],
                    xerr=[[t["median"] - t["min"] for _, t in got], [t["max"] - t["median"] for _, t in got]],
                    color=["#1f6f8b" if n == "quipu" else "#b0b0b0" for n, _ in got], capsize=2)
            for i, (_, t) in enumerate(got):
                ax.annotate(fmt(t["median"]), (t["median"], i), xytext=(3, 6), textcoords="offset points", fontsize=7)
            ax.set_yticks(y, [n for n, _ in got], fontsize=8)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.tick_params(labelsize=7)
            ax.set_title(f"{TITLES.get(s['label'], s['label'])}: {title}", fontsize=9)
            ax.set_xlabel("seconds (median, min – max; log)", fontsize=7)
    fig.suptitle("Push and pull through one moto S3 server (shorter is faster)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--charts")
    a = ap.parse_args()
    res = Results(a.results)
    m = res.machine()
    all_sets = sets(res)
    print(f"moto_server {m.get('moto', '?')} on 127.0.0.1, {m.get('restic', '?')}, {m.get('rclone', '?')}; "
          f"{m.get('cpus', '?')} CPUs; median of {m.get('runs', '?')} runs (hyperfine), min – max in brackets.")
    for s in all_sets:
        table(res, s)
    if a.charts:
        chart(res, all_sets, Path(a.charts) / "compare-remote.png")
        print(f"\n(chart: {Path(a.charts) / 'compare-remote.png'})")


if __name__ == "__main__":
    main()
