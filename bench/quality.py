"""Quality benchmark: the U-Net (TrainConfig defaults, several seeds) vs the MARIDA paper's per-pixel Random Forest.

Both are trained on the synthetic train split and scored on the SAME test split with the project's MARIDA protocol
(one confusion matrix over the annotated pixels of the whole split, pooled; marine_unet.metrics.scores_from_confusion).

    python bench/quality.py                       # RF + U-Net defaults, seeds 0 1 2
    python bench/quality.py --set epochs=80 --set lr=0.002 --tag e80-lr2e-3    # another U-Net configuration
    python bench/quality.py --quick               # smoke run (2 epochs, 1 seed, small RF)
    python bench/quality.py --family archive      # on the archive family's dataset (marine_unet.synthetic.SYNTHETIC_FAMILIES)
"""
from __future__ import annotations
import dataclasses, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403  (also sets the offline environment variables)
import numpy as np
import torch

from marine_unet.core import BAND_NAMES, IGNORE_INDEX, band_stats, class_names, codes_to_target, parse_bands
from marine_unet.core import spectral_indices as core_spectral_indices
from marine_unet.metrics import confusion_matrix, scores_from_confusion
from marine_unet.data import MaridaDataset
from marine_unet.synthetic import SYNTHETIC_FAMILIES, synthetic_marida_dir
from marine_unet.train import TrainConfig, train
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
    return all(saved.get(k) == v for k, v in wanted.items() if k not in ("out_dir", "progress", "device"))

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
    test = evaluate_model(run_dir / "best_model", overrides.get("data_dir", ""), split="test", device="cuda" if torch.cuda.is_available() else "cpu")
    return {"seed": seed, "run_dir": str(run_dir), "train_seconds": round(train_s, 1), "epochs_run": len(history), "best_epoch": val.get("best_epoch"),
            "val": {k: val[k] for k in ("macro_f1", "miou")}, "scores": test}

def _row(name: str, s: dict) -> dict:
    debris = s["per_class"].get("Marine Debris", {})
    return {"model": name, "macro_f1": s["macro_f1"], "miou": s["miou"], "debris_f1": debris.get("f1"), "accuracy": s["accuracy"]}

def _parse_set(items: list[str]) -> dict:
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields: raise SystemExit(f"--set {item}: TrainConfig has no field {key!r}")
        default = getattr(TrainConfig(), key)
        out[key] = (value.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)(value)
    return out

def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="U-Net training seeds")
    p.add_argument("--epochs", type=int, default=0, help="U-Net epochs (0 = TrainConfig default)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="other TrainConfig overrides (repeatable)")
    p.add_argument("--tag", default="", help="name of this U-Net configuration (run folders and results file)")
    p.add_argument("--no-rf", action="store_true", help="skip the Random Forest (reuse its numbers from results/quality_rf.json)")
    p.add_argument("--no-reuse", action="store_true", help="retrain U-Net runs even if a finished run folder exists")
    p.add_argument("--family", default="default", choices=tuple(SYNTHETIC_FAMILIES), help="synthetic dataset family to train and score on")
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    overrides = _parse_set(args.set)
    if args.epochs: overrides["epochs"] = args.epochs
    if args.quick: overrides.setdefault("epochs", 2); overrides.setdefault("max_batches", 2); args.seeds = args.seeds[:1]
    overrides.setdefault("device", device.type)
    tag = args.tag or ("quick" if args.quick else "default" if set(overrides) <= {"device"} else "-".join(f"{k}{v}" for k, v in sorted(overrides.items()) if k != "device"))
    if args.family != "default": tag = f"{args.family}-{tag}"      # own run folders and results files per family
    root = synthetic_marida_dir(family=args.family)
    if args.family != "default": overrides["data_dir"] = str(root)  # (the default family: TrainConfig's own default data)
    rows, result = [], {"machine": machine_info(device), "command": command_line(), "data": str(root), "config": dataclasses.asdict(TrainConfig(**overrides)),
                        "tag": tag, "threads": threads}
    rf_name = "quality_rf" if args.family == "default" else f"quality_rf_{args.family}"
    rf_file = RESULTS_DIR / f"{rf_name}.json"
    if args.no_rf and rf_file.exists():
        import json; rf = json.loads(rf_file.read_text())
    else:
        rf = random_forest(root, quick=args.quick)
        if not args.quick: write_results(rf_name, rf)
    result["random_forest"] = rf; rows.append(_row("RF (MARIDA paper)", rf["scores"]) | {"seconds": rf["fit_seconds"]})
    runs = []
    for seed in args.seeds:
        r = unet_run(overrides, seed, MODELS_DIR / "quality" / tag / f"seed-{seed}", reuse=not args.no_reuse)
        runs.append(r); rows.append(_row(f"U-Net {tag} seed {seed}", r["scores"]) | {"val_macro_f1": r["val"]["macro_f1"], "seconds": r["train_seconds"], "best_epoch": r["best_epoch"]})
        print(f"seed {seed}: test macro-F1 {r['scores']['macro_f1']:.4f} (val {r['val']['macro_f1']:.4f}), {r['train_seconds']} s", flush=True)
    summary = {}
    for key in ("macro_f1", "miou", "debris_f1"):
        vals = [_row("", r["scores"])[key] for r in runs]; vals = [v for v in vals if v is not None]
        summary[key] = {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "values": vals}
    rows.append({"model": f"U-Net {tag} mean ± std ({len(runs)} seeds)", **{k: summary[k]["mean"] for k in summary}})
    rf_f1 = rf["scores"]["macro_f1"]; margin = summary["macro_f1"]["mean"] - rf_f1
    result |= {"unet_runs": runs, "unet_summary": summary, "margin_macro_f1": margin, "target": "U-Net macro-F1 >= RF + 0.05",
               "meets_target": bool(margin >= 0.05)}
    for r in result["unet_runs"]: r["scores"].pop("confusion_matrix", None)
    table = markdown_table(rows, ["model", "macro_f1", "miou", "debris_f1", "accuracy", "val_macro_f1", "best_epoch", "seconds"])
    spread = " ".join(f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in summary.items() if v["mean"] is not None)
    text = (f"{table}\n\nU-Net {tag}: {spread}\nmargin macro-F1 (U-Net mean - RF) = {margin:+.4f}; target >= +0.05: "
            f"{'MET' if margin >= 0.05 else 'NOT met'}\n{command_line()}")
    print(text)
    result["table"] = text
    name = "quality_quick" if args.quick else f"quality_{tag}" if tag != "default" else "quality"
    if args.family != "default": name = f"quality_{args.family}_quick" if args.quick else f"quality_{tag}"   # e.g. quality_archive-default
    path = write_results(name, result)
    print(f"wrote {path}")

if __name__ == "__main__":
    main()
