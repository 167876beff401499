#!/usr/bin/env python3
"""Helpers of quality-table.sh: read the measurements each row makes and print the table.

  quality_table.py time FILE              wall seconds, CPU seconds (user + system) and peak RSS in MiB
                                          from one or more `/usr/bin/time -v` reports in FILE (summed;
                                          peak RSS is the largest)
  quality_table.py qdiff FILE             perplexity of the new model, mean KL(old || new), top-1
                                          agreement and windows from `qdiff --data ... --format json`
  quality_table.py qinspect FILE          perplexity and windows from `qinspect --perplexity ... --format json`
  quality_table.py llama-ppl FILE         the final estimate of a `llama-perplexity` log
  quality_table.py render TSV             the TSV as an aligned table on stdout

Values a row could not measure are '-'.
"""
import json
import re
import sys


def time_report(path):
    wall = cpu = 0.0
    rss = 0
    text = open(path, encoding="utf-8", errors="replace").read()
    for match in re.finditer(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)", text):
        seconds = 0.0
        for part in match.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        wall += seconds
    for match in re.finditer(r"(User|System) time \(seconds\): ([0-9.]+)", text):
        cpu += float(match.group(2))
    for match in re.finditer(r"Maximum resident set size \(kbytes\): ([0-9]+)", text):
        rss = max(rss, int(match.group(1)))
    if rss == 0:
        return "-\t-\t-"
    return f"{wall:.1f}\t{cpu:.1f}\t{rss / 1024:.0f}"


def qdiff_report(path):
    data = json.load(open(path))["data"]
    new = data["new"]
    return (
        f"{new['perplexity']:.4f}\t{data.get('mean_kl', float('nan')):.5f}\t"
        f"{data.get('top1_agreement', float('nan')):.4f}\t{data['windows']}"
    )


def qinspect_report(path):
    report = json.load(open(path))
    entry = report[0] if isinstance(report, list) else report
    ppl = entry["perplexity"]
    return f"{ppl['perplexity']:.4f}\t{ppl['windows']}"


def llama_ppl(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    match = re.search(r"Final estimate: PPL = ([0-9.]+)", text)
    return match.group(1) if match else "-"


def render(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8") if line.strip()]
    if not rows:
        return
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    # The note column goes last and is not padded.
    widths = [max(len(row[i]) for row in rows) for i in range(width - 1)]
    for row in rows:
        cells = []
        for i, cell in enumerate(row[:-1]):
            numeric = re.fullmatch(r"-?[0-9.e+]+", cell) is not None
            cells.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        print("  ".join(cells + [row[-1]]).rstrip())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    command, path = sys.argv[1:]
    try:
        if command == "time":
            print(time_report(path))
        elif command == "qdiff":
            print(qdiff_report(path))
        elif command == "qinspect":
            print(qinspect_report(path))
        elif command == "llama-ppl":
            print(llama_ppl(path))
        elif command == "render":
            render(path)
        else:
            sys.exit(__doc__)
    except (OSError, ValueError, KeyError, IndexError) as error:
        print(f"quality_table.py: {path}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
