"""What the benches/compare report scripts share: reading one results folder
(hyperfine's <case>.json, quipu's own timings in <case>.csv, machine.txt)
and formatting times, ranges, ratios and tables as markdown."""

import json
import statistics
from pathlib import Path


class Results:
    def __init__(self, folder):
        self.folder = Path(folder)

    def timing(self, case):
        """hyperfine's median, min, max and number of timed runs."""
        path = self.folder / f"{case}.json"
        if not path.exists():
            return None
        r = json.loads(path.read_text())["results"][0]
        return {"median": r["median"], "min": r["min"], "max": r["max"], "n": len(r["times"])}

    def own_rows(self, case):
        """The lines of quipu's own log of `case` for the timed runs only (the
        first lines are hyperfine's warm-ups), split at commas."""
        path = self.folder / f"{case}.csv"
        t = self.timing(case)
        if not path.exists() or t is None:
            return None
        return [line.split(",") for line in path.read_text().split()][-t["n"]:]

    def own(self, case, col):
        """Median, min and max of column `col` of quipu's own log."""
        rows = self.own_rows(case)
        vals = [float(r[col]) for r in rows or [] if len(r) > col and r[col]]
        if not vals:
            return None
        return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}

    def machine(self):
        path = self.folder / "machine.txt"
        text = path.read_text() if path.exists() else ""
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def print_machine(self, machine):
        """The lines every report starts with (each report adds its own)."""
        print("Machine: " + machine.get("cpus", "?") + " CPUs, " + machine.get("memory", "?") + ", "
              + machine.get("filesystem", "?") + ", kernel " + machine.get("kernel", "?") + ".  ")
        print("Page cache: " + machine.get("cache", "?") + ". " + machine.get("runs", "") + " (hyperfine).  ")
        print("Tools: " + machine.get("tools", "?") + ".  ")

    def table(self, rows, refs, own_title, own):
        """rows: (label, case); refs: (column title, case) to divide by;
        own(case): quipu's own time of a case, or None."""
        head = ["", "median", "min – max", own_title] + [t for t, _ in refs]
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, case in rows:
            t = self.timing(case)
            if t is None:
                continue
            i = own(case)
            cells = [label, f"**{fmt(t['median'])}**", span(t), f"{fmt(i['median'])} ({span(i)})" if i else ""]
            cells += [ratio(t, self.timing(ref)) for _, ref in refs]
            out.append("| " + " | ".join(cells) + " |")
        return "\n".join(out)


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


def verdict(ok):
    return "**met**" if ok else "**not met**"
