#!/usr/bin/env python3
"""Markdown tables from `quad eval --json` outputs (docs/zeroshot.md).

  eval_table.py LABEL=FILE ...           the paper-metric table and the all-metrics table
  eval_table.py --check-repeat A B       exit 1 unless two runs agree on every metric
"""
import json
import sys

TASKS = ["piqa", "hellaswag", "arc_easy", "arc_challenge", "winogrande", "lambada_openai",
         "openbookqa", "boolq", "social_iqa"]
METRICS = ["items", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "perplexity",
           "perplexity_stderr", "paper_metric"]


def load(path):
    with open(path) as f:
        return json.load(f)


def pct(task, key):
    if key not in task:
        return "-"
    return f"{100 * task[key]:.1f} ± {100 * task[key + '_stderr']:.1f}"


def paper_key(task):
    return "acc_norm" if "acc_norm" in task else "acc"


def check_repeat(a_path, b_path):
    a, b = load(a_path), load(b_path)
    ta = {t["task"]: t for t in a["tasks"]}
    tb = {t["task"]: t for t in b["tasks"]}
    differ = [(name, m) for name in ta for m in METRICS if ta[name].get(m) != tb.get(name, {}).get(m)]
    if ta.keys() != tb.keys() or a["average"] != b["average"] or differ:
        print(f"runs differ: {differ[:5]}")
        return 1
    print(f"the two runs agree on every metric of {len(ta)} tasks (average {a['average']:.6f})")
    return 0


def tables(pairs):
    runs = [(label, load(path)) for label, path in pairs]
    head = "| model | " + " | ".join(TASKS) + " | avg |"
    print(head)
    print("|---|" + "---:|" * (len(TASKS) + 1))
    for label, run in runs:
        by = {t["task"]: t for t in run["tasks"]}
        cells = [pct(by[t], paper_key(by[t])) if t in by else "-" for t in TASKS]
        print(f"| {label} | " + " | ".join(cells) + f" | {100 * run['average']:.1f} |")
    print()
    print("| model | task | items | acc | acc_norm | perplexity | seconds |")
    print("|---|---|---:|---|---|---|---:|")
    for label, run in runs:
        for t in run["tasks"]:
            ppl = (f"{t['perplexity']:.1f} ± {t['perplexity_stderr']:.1f}" if "perplexity" in t
                   else "-")
            print(f"| {label} | {t['task']} | {t['items']} | {pct(t, 'acc')} | "
                  f"{pct(t, 'acc_norm')} | {ppl} | {t['seconds']:.0f} |")


def main(argv):
    if len(argv) == 3 and argv[0] == "--check-repeat":
        return check_repeat(argv[1], argv[2])
    if not argv or any("=" not in a for a in argv):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tables([a.rsplit("=", 1) for a in argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
