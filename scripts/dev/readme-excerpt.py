#!/usr/bin/env python3
"""Replaces the plan excerpt in README.md (the fenced block after "An excerpt of the default
report") with the real `ckv-sim plan --gpu A100-80G --context 128k` output: the settings, the
budget-1024 rows and the full cache, some columns cut, and the recommendation. Run by
scripts/cli-docs.sh."""
import re, subprocess, sys

KEEP = ["policy", "budget", "kv", "KV/request peak", "after (nominal)", "after (physical)", "max conc.", "sat. out tok/s", "SLO req/s",
        "TTFT p50/p90/p99 s"]

def main(binary: str) -> None:
    text = subprocess.run([binary, "plan", "--gpu", "A100-80G", "--context", "128k"], check=True, capture_output=True, text=True).stdout
    lines = text.split("\n")
    head_at = next(i for i, l in enumerate(lines) if l.startswith("policy "))
    rule = lines[head_at + 1]
    # Column spans from the rule of ─ under the header.
    spans = [(m.start(), m.end()) for m in re.finditer("─+", rule)]
    header = lines[head_at]
    names = [header[a:(spans[i + 1][0] if i + 1 < len(spans) else None)].strip() for i, (a, _) in enumerate(spans)]
    # A header may carry its error band after the name ("max conc. ±3.6 %").
    keep = [next(i for i, n in enumerate(names) if n == k or n.startswith(k + " ")) for k in KEEP]
    def cells(line):
        return [line[a:(spans[i + 1][0] if i + 1 < len(spans) else None)].strip() for i, (a, _) in enumerate(spans)]
    rows = [cells(l) for l in lines[head_at + 2:] if l.strip() and not l.startswith("Recommendation")]
    rows = [r for r in rows if r[1] in ("—", "1024")]
    table = [[names[k] for k in keep]] + [[r[k] for k in keep] for r in rows]
    widths = [max(len(t[c]) for t in table) for c in range(len(keep))]
    out = lines[:head_at - 1] + [""]
    out += ["  ".join(c.ljust(widths[i]) if i < len(keep) - 1 else c for i, c in enumerate(t)).rstrip() for t in table]
    rec = next(l for l in lines if l.startswith("Recommendation"))
    out += ["", rec]
    readme = open("README.md").read()
    start = readme.index("An excerpt of the default")
    fence = readme.index("```\n", start) + 4
    end = readme.index("```\n", fence)
    open("README.md", "w").write(readme[:fence] + "\n".join(out) + "\n" + readme[end:])

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".build/release/ckv-sim")
