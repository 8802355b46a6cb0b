"""Quality benchmark: the U-Net (TrainConfig defaults, several seeds) vs the MARIDA paper's per-pixel Random Forest.

Both are trained on the synthetic train split and scored on the SAME test split with the project's MARIDA protocol
(one confusion matrix over the annotated pixels of the whole split, pooled; marine_unet.metrics.scores_from_confusion).

    python bench/quality.py                       # RF + U-Net defaults, seeds 0 1 2
    python bench/quality.py --set features= --tag bands-only     # the U-Net on the bands alone (the default until 2026-11-30)
    python bench/quality.py --set epochs=80 --set lr=0.002 --tag e80-lr2e-3    # another U-Net configuration
    python bench/quality.py --quick               # smoke run (2 epochs, 1 seed, small RF)
    python bench/quality.py --family archive      # on the archive family's dataset (marine_unet.synthetic.SYNTHETIC_FAMILIES)
    python bench/quality.py --folds 4             # scene-grouped cross-validation: every scene is tested once, RF and U-Net per fold

Every model is reported with macro-F1, mIoU, Marine Debris F1 / IoU / precision / recall, and per-class F1 and IoU.
"""
from __future__ import annotations
import dataclasses, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403  (also sets the offline environment variables)
import numpy as np
import torch

from marine_unet.core import BAND_NAMES, IGNORE_INDEX, band_stats, class_names, codes_to_target, parse_bands, parse_features
from marine_unet.core import spectral_indices as core_spectral_indices
from marine_unet.metrics import confusion_matrix, scores_from_confusion
from marine_unet.data import MaridaDataset, group_kfold_splits, patch_class_counts, read_split_ids
from marine_unet.synthetic import SYNTHETIC_FAMILIES, synthetic_marida_dir
from marine_unet.train import FIELDS_ADDED_LATER, RUN_ONLY_FIELDS, TrainConfig, train
from marine_unet.forward import autocast_dtype, precision_name
from marine_unet.evaluate import evaluate_model

# ------------------------------------------------------------------------------------------------ RF features
INDEX_NAMES = ("NDVI", "FAI", "FDI", "SI", "NDWI", "NRD", "NDMI", "BSI")  # the spectral indices of the MARIDA paper's RF

def spectral_indices(x: np.ndarray) -> np.ndarray:
    """The MARIDA paper's spectral indices (Kikaki et al. 2022, Table 3) of reflectance `x` (11, H, W) in BAND_NAMES order,
    as the package computes them (core.spectral_indices): NDVI, FAI, FDI, SI, NDWI, NRD, NDMI, BSI. (The paper's RF
    also used GLCM textures; they are left out here.)"""
    x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    return core_spectral_indices(x, BAND_NAMES, [n.lower() for n in INDEX_NAMES]).numpy()

def pixel_features(root: Path, split: str, protocol: int=11) -> tuple[np.ndarray, np.ndarray, list]:
    "Features (pixels, 11 bands + indices) and targets of every annotated pixel of `split`, and per-patch (targets, index) for mapping back."
    ds = MaridaDataset(root, split, protocol=protocol, normalize="official", cache=True)
    fill = band_stats(BAND_NAMES)[0][:, None, None]
    feats, targets = [], []
    for i in range(len(ds)):
        image, codes, _ = ds.read_raw(i)
        image = np.where(np.isnan(image), fill, image).astype(np.float32)
        target = codes_to_target(codes, protocol); keep = target != IGNORE_INDEX
        f = np.concatenate([image, spectral_indices(image)])[:, keep].T
        feats.append(f); targets.append(target[keep])
    return np.concatenate(feats), np.concatenate(targets).astype(np.int64), ds

def random_forest(root: Path, quick: bool=False, seed: int=0, max_train_pixels: int=0) -> dict:
    "Train the MARIDA-paper RF (125 trees, depth 20, balanced_subsample) on annotated train pixels; score the test split."
    from sklearn.ensemble import RandomForestClassifier
    names = class_names(11)
    t0 = time.perf_counter()
    x, y, _ = pixel_features(root, "train")
    if max_train_pixels and len(y) > max_train_pixels:
        pick = np.random.default_rng(seed).choice(len(y), max_train_pixels, replace=False); x, y = x[pick], y[pick]
    rf = RandomForestClassifier(n_estimators=10 if quick else 125, max_depth=20, class_weight="balanced_subsample",
                                n_jobs=torch.get_num_threads(), random_state=seed)
    rf.fit(x, y); fit_s = time.perf_counter() - t0
    xt, yt, _ = pixel_features(root, "test")
    pred = rf.classes_[rf.predict(xt)]
    scores = scores_from_confusion(confusion_matrix(yt, pred, len(names)), names)
    return {"model": "RF (11 bands + " + ", ".join(INDEX_NAMES) + ")", "train_pixels": int(len(y)), "test_pixels": int(len(yt)),
            "trees": rf.n_estimators, "fit_seconds": round(fit_s, 1), "scores": scores}

# ------------------------------------------------------------------------------------------------ U-Net
def _same_config(run_dir: Path, overrides: dict, seed: int) -> bool:
    "Whether the finished run in run_dir was trained with TrainConfig() + overrides and `seed` (else it is retrained)."
    import json
    try: saved = json.loads((run_dir / "params.json").read_text())
    except (OSError, ValueError): return False
    wanted = dataclasses.asdict(TrainConfig(seed=seed, **overrides))
    wanted["bands"] = list(parse_bands(wanted["bands"] or None))   # saved as checked band names
    wanted["features"] = list(parse_features(wanted["features"], wanted["bands"]))   # and checked index names
    defaults = dataclasses.asdict(TrainConfig()) | FIELDS_ADDED_LATER   # a field added since the run was saved: what it ran at
    same = all(saved.get(k, defaults[k]) == v for k, v in wanted.items() if k not in (*RUN_ONLY_FIELDS, "precision"))
    device = pick_device(overrides.get("device", "auto"))
    return same and _saved_precision(saved, device) == precision_name(autocast_dtype(wanted["precision"], device))

def _saved_precision(saved: dict, device: torch.device) -> str:
    "The arithmetic a saved run trained in: its precision_resolved, or for older runs what precision meant then."
    if "precision_resolved" in saved: return saved["precision_resolved"]
    name = saved.get("precision", "auto")   # until 2026-11-30 "auto" was fp16 on CUDA and fp32 on every CPU
    return name if name != "auto" else ("fp16" if device.type == "cuda" else "fp32")

def unet_run(overrides: dict, seed: int, run_dir: Path, reuse: bool=True) -> dict:
    "Train TrainConfig() + overrides with `seed` into run_dir (reused when finished earlier); score best_model on val and test."
    done = run_dir / "metrics.json"
    t0 = time.perf_counter()
    if not (reuse and done.exists() and _same_config(run_dir, overrides, seed)):
        if run_dir.exists():
            import shutil; shutil.rmtree(run_dir)
        train(TrainConfig(out_dir=str(run_dir), seed=seed, progress=False, **overrides))
    import json
    history = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").exists() else []
    train_s = sum(float(h.get("seconds", 0)) for h in history) or time.perf_counter() - t0   # epochs' own time (also for reused runs)
    val = json.loads(done.read_text())
    scored = run_dir / "quality_test_scores.json"   # the test scores of this finished run, kept beside it (git-ignored)
    if scored.exists() and scored.stat().st_mtime >= done.stat().st_mtime: test = json.loads(scored.read_text())
    else:
        test = evaluate_model(run_dir / "best_model", overrides.get("data_dir", ""), split="test", device="cuda" if torch.cuda.is_available() else "cpu")
        write_results(scored.stem, test, run_dir)
    return {"seed": seed, "run_dir": str(run_dir), "train_seconds": round(train_s, 1), "epochs_run": len(history), "best_epoch": val.get("best_epoch"),
            "val": {k: v for k, v in val.items() if k != "confusion_matrix"}, "scores": test,
            "val_macro_f1_by_epoch": [None if h.get("macro_f1") is None else round(h["macro_f1"], 5) for h in history]}   # to replay early-stopping rules

SUMMARY_KEYS = ("debris_f1", "debris_iou", "macro_f1", "miou", "debris_precision", "debris_recall")

def _row(name: str, s: dict) -> dict:
    "One table row: Marine Debris first, then the averages over classes."
    debris = s["per_class"].get("Marine Debris", {})
    return {"model": name, "debris_f1": debris.get("f1"), "debris_iou": debris.get("iou"), "macro_f1": s["macro_f1"], "miou": s["miou"],
            "debris_precision": debris.get("precision"), "debris_recall": debris.get("recall"), "accuracy": s["accuracy"]}

def mean_std(values: list) -> dict:
    "Mean, std (ddof=1; 0 for one value) and the values, Nones left out (mean None when nothing is left)."
    vals = [v for v in values if v is not None]
    return {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "values": vals}

def summarise(score_sets: list[dict]) -> dict:
    "Mean, std (ddof=1) and values over runs of each SUMMARY_KEYS figure and of each class's F1 and IoU."
    out = {k: mean_std([_row("", s)[k] for s in score_sets]) for k in SUMMARY_KEYS}
    names = score_sets[0]["per_class"].keys() if score_sets else []
    out["per_class"] = {c: {m: mean_std([s["per_class"].get(c, {}).get(m) for s in score_sets]) for m in ("f1", "iou")} for c in names}
    return out

def per_class_table(columns: dict[str, dict]) -> str:
    "Markdown table of per-class F1 / IoU (mean over runs) of each model: columns maps a model name to summarise()'s output."
    classes = list(next(iter(columns.values()))["per_class"])
    rows = [{"class": c, **{f"{m} F1 / IoU": f"{v['per_class'][c]['f1']['mean']:.3f} / {v['per_class'][c]['iou']['mean']:.3f}"
                             for m, v in columns.items() if v["per_class"].get(c, {}).get("f1", {}).get("mean") is not None}} for c in classes]
    return markdown_table(rows)

# ------------------------------------------------------------------------------------------------ scene-grouped folds
def fold_data_dirs(root: Path, k: int, work: Path) -> list[Path]:
    """Scene-grouped k-fold datasets of root's patches (linked, not copied): fold j is tested on scene group j, validated
    on group j+1 and trained on the other groups, so every scene is tested once and no scene is on two sides."""
    ids = [i for split in ("train", "val", "test") for i in read_split_ids(root, split)]
    groups = [held for _, held in group_kfold_splits(ids, k, seed=0, class_counts=patch_class_counts(root, ids))]
    dirs = []
    for j in range(k):
        d = work / f"fold-{j}"; (d / "splits").mkdir(parents=True, exist_ok=True)
        if not (d / "patches").exists(): (d / "patches").symlink_to(root / "patches", target_is_directory=True)
        test, val = groups[j], groups[(j + 1) % k]
        parts = {"train": [i for i in ids if i not in set(test) | set(val)], "val": val, "test": test}
        for name, part in parts.items(): (d / "splits" / f"{name}_X.txt").write_text("\n".join(part) + "\n")
        dirs.append(d)
    return dirs

def parse_overrides(items: list[str], option: str="--set") -> dict:
    "TrainConfig overrides from FIELD=VALUE strings, each VALUE converted to the field's type (`option` names them in errors)."
    fields, out = {f.name for f in dataclasses.fields(TrainConfig)}, {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields: raise SystemExit(f"{option} {item}: TrainConfig has no field {key!r}")
        default = getattr(TrainConfig(), key)
        out[key] = (value.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)(value)
    return out

def results_name(family: str, tag: str, quick: bool=False, folds: int=0) -> str:
    "The results file (without .json) of U-Net configuration `tag` on `family`: quality.json, quality_<tag>.json, quality_<family>-<tag>.json."
    name = ("quality_quick" if quick else "quality" if tag == "default" else f"quality_{tag}") if family == "default" else \
           (f"quality_{family}_quick" if quick else f"quality_{family}-{tag}")
    return name + (f"_k{folds}" if folds else "")

def rf_results_name(family: str) -> str:
    "The results file (without .json) of the Random Forest on `family`."
    return "quality_rf" if family == "default" else f"quality_rf_{family}"

def _load_or_fit_rf(root: Path, rf_file: Path, refit: bool, quick: bool) -> dict:
    "The RF scores on root's test split: read from rf_file, or fitted (and written there unless quick)."
    import json
    if not refit and rf_file.exists(): return json.loads(rf_file.read_text())
    rf = random_forest(root, quick=quick)
    if not quick: write_results(rf_file.stem, rf, rf_file.parent)
    return rf

def _fmt(stat: dict) -> str:
    return "–" if stat["mean"] is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"

def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="U-Net training seeds")
    p.add_argument("--epochs", type=int, default=0, help="U-Net epochs (0 = TrainConfig default)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="other TrainConfig overrides (repeatable)")
    p.add_argument("--tag", default="", help="name of this U-Net configuration (run folders and results file)")
    p.add_argument("--no-rf", action="store_true", help="skip the Random Forest (reuse its numbers from results/quality_rf*.json)")
    p.add_argument("--rf-results", default="", help="the RF's results file in results/, without .json (default quality_rf[_<family>]); "
                   "another for a dataset of another kind of CPU (the generator's data differ without AVX-512)")
    p.add_argument("--no-reuse", action="store_true", help="retrain U-Net runs even if a finished run folder exists")
    p.add_argument("--family", default="default", choices=tuple(SYNTHETIC_FAMILIES), help="synthetic dataset family to train and score on")
    p.add_argument("--folds", type=int, default=0, help="scene-grouped cross-validation with this many folds (0: the dataset's own splits)")
    args = p.parse_args()
    if args.folds == 1 or args.folds < 0: raise SystemExit(f"--folds {args.folds}: 0 (no cross-validation) or at least 2")
    threads = set_threads(args.threads); device = pick_device(args.device)
    overrides = parse_overrides(args.set)
    if args.epochs: overrides["epochs"] = args.epochs
    if args.quick: overrides.setdefault("epochs", 2); overrides.setdefault("max_batches", 2); args.seeds = args.seeds[:1]
    overrides.setdefault("device", device.type)
    config_tag = args.tag or ("quick" if args.quick else "default" if set(overrides) <= {"device"} else "-".join(f"{k}{v}" for k, v in sorted(overrides.items()) if k != "device"))
    tag = config_tag if args.family == "default" else f"{args.family}-{config_tag}"   # own run folders per family
    root = synthetic_marida_dir(family=args.family)
    if args.folds:   # every fold its own dataset folder, RF and run folders
        fold_root = MODELS_DIR / "quality" / "folds" / f"{args.family}-k{args.folds}"
        datasets = [(f"fold {j}", d, d / "rf.json", MODELS_DIR / "quality" / tag / f"k{args.folds}" / d.name)
                    for j, d in enumerate(fold_data_dirs(root, args.folds, fold_root))]
    else:
        datasets = [("", root, RESULTS_DIR / f"{args.rf_results or rf_results_name(args.family)}.json", MODELS_DIR / "quality" / tag)]
    result = {"machine": machine_info(device), "command": command_line(), "data": str(root), "folds": args.folds,
              "config": dataclasses.asdict(TrainConfig(**overrides)), "tag": tag, "threads": threads}
    data_overrides = lambda data: overrides | ({"data_dir": str(data)} if (args.folds or args.family != "default") else {})
    clash = [str(run_root / f"seed-{s}") for _, data, _, run_root in datasets for s in args.seeds if not (args.no_reuse or args.quick)
             and (run_root / f"seed-{s}" / "metrics.json").exists() and not _same_config(run_root / f"seed-{s}", data_overrides(data), s)]
    if clash: raise SystemExit(f"finished runs with other settings (a changed default?): {', '.join(clash)}; give this configuration "
                               "another --tag, or --no-reuse to retrain them in place")   # before any work: they were deleted and retrained
    rows, rfs, runs = [], [], []
    for name, data, rf_file, run_root in datasets:
        where = f" {name}" if name else ""
        rf = _load_or_fit_rf(data, rf_file, refit=not args.no_rf or args.quick, quick=args.quick) | ({"fold": name} if name else {})
        rfs.append(rf); rows.append(_row(f"RF (MARIDA paper){where}", rf["scores"]) | {"seconds": rf["fit_seconds"]})
        fold_overrides = data_overrides(data)
        for seed in args.seeds:
            r = unet_run(fold_overrides, seed, run_root / f"seed-{seed}", reuse=not args.no_reuse) | ({"fold": name} if name else {})
            runs.append(r)
            rows.append(_row(f"U-Net {tag}{where} seed {seed}", r["scores"]) | {"val_debris_f1": r["val"].get("per_class", {}).get("Marine Debris", {}).get("f1"),
                        "val_macro_f1": r["val"]["macro_f1"], "best_epoch": r["best_epoch"], "seconds": r["train_seconds"]})
            print(f"{name or 'test'} seed {seed}: debris F1 {rows[-1]['debris_f1']:.4f}, macro-F1 {r['scores']['macro_f1']:.4f} "
                  f"(val {r['val']['macro_f1']:.4f}), {r['train_seconds']} s", flush=True)
    rf_summary, summary = summarise([rf["scores"] for rf in rfs]), summarise([r["scores"] for r in runs])
    over = f"{len(runs)} runs: {len(args.seeds)} seed(s)" + (f" × {args.folds} scene-grouped folds" if args.folds else "")
    if args.folds: rows.append({"model": f"RF mean ({args.folds} folds)", **{k: rf_summary[k]["mean"] for k in SUMMARY_KEYS}})
    rows.append({"model": f"U-Net {tag} mean ({over})", **{k: summary[k]["mean"] for k in SUMMARY_KEYS}})
    margins = {k: summary[k]["mean"] - rf_summary[k]["mean"] for k in ("debris_f1", "macro_f1")}
    result |= {"random_forest": rfs if args.folds else rfs[0], "rf_summary": rf_summary, "unet_runs": runs, "unet_summary": summary,
               "margin_debris_f1": margins["debris_f1"], "margin_macro_f1": margins["macro_f1"],
               "target": "U-Net debris F1 >= RF + 0.03", "meets_target": bool(margins["debris_f1"] >= 0.03)}
    for r in (*runs, *rfs): r["scores"].pop("confusion_matrix", None)
    table = markdown_table(rows, ["model", *SUMMARY_KEYS[:4], "accuracy", "val_debris_f1", "val_macro_f1", "best_epoch", "seconds"])
    spread = ", ".join(f"{k} {_fmt(summary[k])}" for k in SUMMARY_KEYS[:4])
    classes = per_class_table({"RF": rf_summary, f"U-Net {tag}": summary})
    text = (f"{table}\n\nU-Net {tag} ({over}): {spread}\nmargins over the RF: debris F1 {margins['debris_f1']:+.4f} "
            f"(target >= +0.03: {'MET' if margins['debris_f1'] >= 0.03 else 'NOT met'}), macro-F1 {margins['macro_f1']:+.4f}\n\n"
            f"per-class F1 / IoU on the test split{'s' if args.folds else ''} (mean over runs):\n\n{classes}\n{command_line()}")
    print(text)
    result["table"] = text
    path = write_results(results_name(args.family, config_tag, args.quick, args.folds), result)
    print(f"wrote {path}")

if __name__ == "__main__":
    main()
