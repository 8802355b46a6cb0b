"""Early stopping and quality: do runs that stop early score below the other seeds of their configuration?

Reads every finished quality run in bench/results/quality*.json (quality.py's results files) trained with 100 epochs
and patience 10 alone (min_epochs 0), and compares each run with the other seeds of the same results file (leave-one-out mean): test
macro-F1, test Marine Debris F1 and validation macro-F1. Trains nothing; prints the runs by the epoch they stopped at
and the mean difference of each group, and writes results/early_stopping.json.

    python bench/early_stopping.py                  # groups: stopped before 60, 60-74, 75-99, ran all 100 epochs
    python bench/early_stopping.py --edges 50 70    # other group edges

With --replay it instead replays early stopping on runs trained to the end (quality.py on runs resumed with
min_epochs=epochs): patience 10 from epoch M on, for each --min-epochs M, gives the epoch each rule would have stopped
at and the best validation macro-F1 it would have kept (from the recorded validation history). Each pair names the
full runs' results file and the results file of the same seeds trained with early stopping; the replay with
min_epochs 0 must stop where those runs stopped (checked), and both files' test scores are reported beside it.

    python bench/early_stopping.py --replay quality_zen3-full:quality_zen3 --min-epochs 0 50 60 70 80 90 100
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
        if len(runs) < 2 or config.get("epochs") != epochs or config.get("patience") != patience or config.get("min_epochs", 0) or data.get("folds"): continue
        family = _family(data)
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

def replay_stop(val_by_epoch: list[float], patience: int=10, min_epochs: int=0) -> tuple[int, int, float]:
    "Epochs run, best epoch and best score of training's early stopping (strict improvement) replayed on a validation history."
    best, best_epoch, bad = -float("inf"), 0, 0
    for epoch, score in enumerate(val_by_epoch, 1):
        if score > best: best, best_epoch, bad = score, epoch, 0
        else: bad += 1
        if bad >= patience > 0 and epoch >= min_epochs: return epoch, best_epoch, best
    return len(val_by_epoch), best_epoch, best

def _family(data: dict) -> str:
    "The synthetic family a quality results file was trained on."
    return "archive" if "archive" in str(data.get("data", "")) else "default"

def _load(name: str) -> dict:
    "A quality results file by name (with or without .json)."
    return json.loads((RESULTS_DIR / f"{name.removesuffix('.json')}.json").read_text())

def _replay_run(run: dict, base: dict|None, epochs: int, min_epochs: list[int], patience: int, where: str) -> dict:
    "One run trained to the end: each min_epochs' replayed stop, best epoch and kept val macro-F1, and both test scores."
    history = run["val_macro_f1_by_epoch"]
    if len(history) != epochs: raise SystemExit(f"{where}: {len(history)} epochs recorded, not trained to the end ({epochs})")
    if base is not None and replay_stop(history, patience)[:2] != (base["epochs_run"], base["best_epoch"]):
        raise SystemExit(f"{where}: the replay stops at {replay_stop(history, patience)[:2]}, the run with early stopping at {base['epochs_run'], base['best_epoch']}")
    row = {"seed": run["seed"], "epochs": epochs, "test_macro_f1_full": run["scores"]["macro_f1"], "test_debris_f1_full": _debris(run["scores"]),
           "test_macro_f1_stopped": base and base["scores"]["macro_f1"], "test_debris_f1_stopped": base and _debris(base["scores"])}
    for m in min_epochs: row[f"stop_m{m}"], row[f"best_m{m}"], row[f"val_m{m}"] = replay_stop(history, patience, m)
    return row

def _replay_groups(rows: list[dict], min_epochs: list[int]) -> list[dict]:
    "Per family and min_epochs: runs, mean epochs run, runs stopped early, mean kept val macro-F1 and its difference to the most epochs."
    most = max(min_epochs)
    return [{"family": family, "min_epochs": m, "runs": len(g), "mean epochs run": _mean([r[f"stop_m{m}"] for r in g]),
             "runs stopped early": sum(r[f"stop_m{m}"] < r["epochs"] for r in g), "val macro-F1": _mean([r[f"val_m{m}"] for r in g]),
             "val vs the most epochs": _mean([r[f"val_m{m}"] - r[f"val_m{most}"] for r in g])}
            for family in sorted({r["family"] for r in rows}) for m in min_epochs
            for g in [[r for r in rows if r["family"] == family]]]

def replay(pairs: list[str], min_epochs: list[int], patience: int=10) -> tuple[list[dict], list[dict]]:
    "Per run and per (family, min_epochs): the replayed stop and kept validation macro-F1 against training to the end."
    rows = []
    for pair in pairs:
        full_name, stopped_name = pair.split(":")
        full, stopped = _load(full_name), {r["seed"]: r for r in _load(stopped_name)["unet_runs"]}
        rows += [{"family": _family(full), **_replay_run(run, stopped.get(run["seed"]), full["config"]["epochs"], min_epochs, patience,
                                                        f"{full_name} seed {run['seed']}")} for run in sorted(full["unet_runs"], key=lambda r: r["seed"])]
    return rows, _replay_groups(rows, min_epochs)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, nargs="+", default=[60, 75], help="group edges in epochs run (the last group below 100 ends at 99)")
    p.add_argument("--replay", nargs="+", default=[], metavar="FULL:STOPPED", help="results files (without .json) of runs trained to the end and of the same seeds with early stopping")
    p.add_argument("--min-epochs", type=int, nargs="+", default=[0, 50, 60, 70, 80, 90, 100], help="min_epochs values to replay")
    args = p.parse_args()
    if args.replay: return main_replay(args)
    if sorted(args.edges) != args.edges or not all(0 < e < 100 for e in args.edges): raise SystemExit(f"--edges {args.edges}: increasing epochs between 1 and 99")
    rows = quality_runs(); groups = group_means(rows, args.edges)
    runs_table = markdown_table(sorted(rows, key=lambda r: r["epochs_run"])[:12], ["file", "seed", "epochs_run", "best_epoch",
                                "test_macro_f1_vs_others", "test_debris_f1_vs_others", "val_macro_f1_vs_others"])
    text = (f"{len(rows)} runs (100 epochs, patience 10), each against the mean of the other seeds of its results file\n\n"
            f"{markdown_table(groups)}\n\nthe 12 runs that stopped first:\n\n{runs_table}\n\n{command_line()}")
    print(text)
    print(f"wrote {write_results('early_stopping', {'command': command_line(), 'runs': rows, 'groups': groups, 'table': text})}")

def main_replay(args):
    "Replay early stopping with each --min-epochs on the --replay runs; print and write results/early_stopping_replay.json."
    if any(pair.count(":") != 1 for pair in args.replay): raise SystemExit(f"--replay {args.replay}: each item is FULL:STOPPED (two results file names)")
    rows, groups = replay(args.replay, sorted(args.min_epochs))
    runs_table = markdown_table(rows, ["family", "seed", *[f"stop_m{m}" for m in sorted(args.min_epochs)], "test_macro_f1_stopped", "test_macro_f1_full",
                                       "test_debris_f1_stopped", "test_debris_f1_full"])
    paired = lambda key: _mean([r[f"{key}_full"] - r[f"{key}_stopped"] for r in rows if r[f"{key}_stopped"] is not None])
    text = (f"patience 10 replayed from each min_epochs on {len(rows)} runs trained to the end\n\n{markdown_table(groups, digits=4)}\n\n{runs_table}\n\n"
            f"test, trained to the end minus early-stopped (paired): macro-F1 {paired('test_macro_f1'):+.4f}, debris F1 {paired('test_debris_f1'):+.4f}\n\n{command_line()}")
    print(text)
    print(f"wrote {write_results('early_stopping_replay', {'command': command_line(), 'runs': rows, 'groups': groups, 'table': text})}")

if __name__ == "__main__":
    main()
