"""Early stopping and quality: do runs that stop early score below the other seeds of their configuration?

Reads every finished quality run in bench/results/quality*.json (quality.py's results files) trained with 100 epochs
and patience 10, and compares each run with the other seeds of the same results file (leave-one-out mean): test
macro-F1, test Marine Debris F1 and validation macro-F1. Trains nothing; prints the runs by the epoch they stopped at
and the mean difference of each group, and writes results/early_stopping.json.

    python bench/early_stopping.py                  # groups: stopped before 60, 60-74, 75-99, ran all 100 epochs
    python bench/early_stopping.py --edges 50 70    # other group edges
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, command_line, markdown_table, write_results

def _debris(scores: dict) -> float|None:
    return scores.get("per_class", {}).get("Marine Debris", {}).get("f1")

def quality_runs(folder: Path=RESULTS_DIR, epochs: int=100, patience: int=10) -> list[dict]:
    "Every run of a quality results file with >= 2 runs, `epochs` and `patience`, with its leave-one-out differences; exact repeats once."
    rows, seen = [], set()
    for path in sorted(folder.glob("quality*.json")):
        data = json.loads(path.read_text())
        runs, config = data.get("unet_runs", []), data.get("config", {})
        if len(runs) < 2 or config.get("epochs") != epochs or config.get("patience") != patience or data.get("folds"): continue
        family = "archive" if "archive" in str(data.get("data", "")) else "default"
        values = {key: [get(r) for r in runs] for key, get in (("test_macro_f1", lambda r: r["scores"]["macro_f1"]),
                  ("test_debris_f1", lambda r: _debris(r["scores"])), ("val_macro_f1", lambda r: r["val"].get("macro_f1")))}
        for i, run in enumerate(runs):
            key = (family, run["seed"], run["epochs_run"], run["best_epoch"], round(run["scores"]["macro_f1"], 6))
            if key in seen: continue   # the same run reported by another results file
            seen.add(key)
            row = {"file": path.name, "family": family, "seed": run["seed"], "epochs_run": run["epochs_run"], "best_epoch": run["best_epoch"]}
            for name, vals in values.items():
                others = _mean([v for j, v in enumerate(vals) if j != i])
                row[f"{name}_vs_others"] = None if vals[i] is None or others is None else vals[i] - others
            rows.append(row)
    return rows

def _mean(values: list) -> float|None:
    "The mean of the values that are not None (None when none is left)."
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None

def group_means(rows: list[dict], edges: list[int], epochs: int=100) -> list[dict]:
    "Per family and stop group (epochs run below each edge, then up to epochs - 1, then all epochs): runs and mean differences."
    bounds = [0, *edges, epochs, epochs + 1]
    out = []
    for family in sorted({r["family"] for r in rows}):
        for lo, hi in zip(bounds, bounds[1:]):
            group = [r for r in rows if r["family"] == family and lo <= r["epochs_run"] < hi]
            if not group: continue
            mean = lambda key: _mean([r[key] for r in group])
            out.append({"family": family, "stopped after": f"all {epochs} epochs" if lo == epochs else f"{lo}–{hi - 1} epochs",
                        "runs": len(group), "test macro-F1 vs others": mean("test_macro_f1_vs_others"),
                        "test debris F1 vs others": mean("test_debris_f1_vs_others"), "val macro-F1 vs others": mean("val_macro_f1_vs_others")})
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, nargs="+", default=[60, 75], help="group edges in epochs run (the last group below 100 ends at 99)")
    args = p.parse_args()
    if sorted(args.edges) != args.edges or not all(0 < e < 100 for e in args.edges): raise SystemExit(f"--edges {args.edges}: increasing epochs between 1 and 99")
    rows = quality_runs(); groups = group_means(rows, args.edges)
    runs_table = markdown_table(sorted(rows, key=lambda r: r["epochs_run"])[:12], ["file", "seed", "epochs_run", "best_epoch",
                                "test_macro_f1_vs_others", "test_debris_f1_vs_others", "val_macro_f1_vs_others"])
    text = (f"{len(rows)} runs (100 epochs, patience 10), each against the mean of the other seeds of its results file\n\n"
            f"{markdown_table(groups)}\n\nthe 12 runs that stopped first:\n\n{runs_table}\n\n{command_line()}")
    print(text)
    print(f"wrote {write_results('early_stopping', {'command': command_line(), 'runs': rows, 'groups': groups, 'table': text})}")

if __name__ == "__main__":
    main()
