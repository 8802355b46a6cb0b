"""Ablation table: every U-Net configuration measured by bench/quality.py, per dataset family, mean ± std over seeds,
beside the Random Forest, led by Marine Debris F1 and IoU. Reads the results files only; trains nothing.

    python bench/ablation.py                                   # the configurations in CONFIGURATIONS
    python bench/ablation.py --config "U-Net + 8 indices=indices8"   # another label=tag (the tag of quality.py --tag)
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, markdown_table, write_results, command_line   # noqa: E402
from quality import mean_std, results_name, rf_results_name   # noqa: E402

# label -> quality.py tag (results file quality_<tag>.json, or quality_<family>-<tag>.json for another family)
CONFIGURATIONS = {"U-Net, bands only, fp32 (the default until 2026-11-30)": "default",
                  "U-Net, bands only, bf16 training": "bands-bf16",
                  "U-Net + the 8 MARIDA indices, fp32": "indices8",
                  "U-Net + 8 indices + debris oversampling x4, fp32": "oversample4",
                  "U-Net + 8 indices, bf16 training (the default on a CPU with native bf16)": "bf16",
                  "the bf16 default + channels-last + half-width decoder (128, 64, 32, 16, 8), issue 20": "cl-halfdec",
                  "the bf16 default, seeds 0-4 (the comparison for the next row)": "bf16x5",
                  "the bf16 default + channels-last + fused AdamW, issue 20 (not the default)": "cl-fused",
                  "the bf16 default with epochs=70, issue 20 (not the default)": "e70",
                  "the bf16 default with epochs=75 + channels-last, issue 20 (not the default)": "cl-e75",
                  "bf16 + channels-last, with the shared-preparation loss, issue 20 (the default since 2026-12-01)": "cl",
                  "the bf16 default with the shared-preparation loss (614ce61; archive: seeds 0, 2 from efd36ff), issue 20": "shared-loss",
                  "the bf16 default + fused AdamW (efd36ff), issue 20 (not the default)": "fused",
                  "bf16 NCHW on an Intel Xeon with AMX, seeds 0-5": "xeon",
                  "bf16 NCHW on an Intel Xeon with AMX (bc4e929), default family": "xeon-bf16",
                  "bf16 + channels-last on an Intel Xeon with AMX (the default since 2026-12-01)": "xeon-cl"}
FAMILIES = ("default", "archive")
COLUMNS = ("model", "seeds", "debris F1", "debris IoU", "macro-F1", "mIoU", "val debris F1", "val macro-F1", "best epoch")
FIGURES = (("debris F1", lambda s: _debris(s, "f1")), ("debris IoU", lambda s: _debris(s, "iou")),
           ("macro-F1", lambda s: s["macro_f1"]), ("mIoU", lambda s: s["miou"]))

def _debris(scores: dict, key: str) -> float:
    return scores["per_class"]["Marine Debris"][key]

def _cell(values: list[float]) -> str:
    s = mean_std(values)
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if len(values) > 1 else f"{s['mean']:.3f}"

def results_file(family: str, tag: str) -> Path:
    "Where bench/quality.py writes the results of `tag` on `family`."
    return RESULTS_DIR / f"{results_name(family, tag)}.json"

def rf_file(family: str) -> Path:
    return RESULTS_DIR / f"{rf_results_name(family)}.json"

def family_rows(family: str, configurations: dict[str, str]) -> tuple[list[dict], dict]:
    "Table rows (RF first, then each configuration found) and the raw figures of one family."
    rows, raw = [], {}
    if rf_file(family).exists():
        rf = json.loads(rf_file(family).read_text())["scores"]
        rows.append({"model": "Random Forest (MARIDA paper features)", "seeds": "–", **{n: f"{f(rf):.3f}" for n, f in FIGURES}})
        raw["Random Forest"] = {n: [f(rf)] for n, f in FIGURES}
    for label, tag in configurations.items():
        path = results_file(family, tag)
        if not path.exists(): continue
        runs = json.loads(path.read_text())["unet_runs"]
        figures = {n: [f(r["scores"]) for r in runs] for n, f in FIGURES}
        figures["val debris F1"] = [r["val"]["per_class"]["Marine Debris"]["f1"] for r in runs if "per_class" in r["val"]]
        figures["val macro-F1"] = [r["val"]["macro_f1"] for r in runs]
        figures["best epoch"] = [r["best_epoch"] for r in runs]
        raw[label] = figures | {"seeds": [r["seed"] for r in runs], "file": path.name}
        rows.append({"model": label, "seeds": " ".join(str(r["seed"]) for r in runs),
                     **{n: _cell(v) for n, v in figures.items() if v and n != "best epoch"},
                     "best epoch": " ".join(str(e) for e in figures["best epoch"])})
    return rows, raw

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", default=[], metavar="LABEL=TAG", help="a configuration to add (repeatable)")
    args = p.parse_args()
    configurations = dict(CONFIGURATIONS)
    for item in args.config:
        label, sep, tag = item.rpartition("=")
        if not sep or not label or not tag: raise SystemExit(f"--config {item!r}: expected LABEL=TAG")
        configurations[label] = tag
    text, out = [], {"command": command_line(), "families": {}}
    for family in FAMILIES:
        rows, raw = family_rows(family, configurations)
        if not rows: continue
        out["families"][family] = raw
        text.append(f"### {family} family (test split; val columns: the validation split)\n\n{markdown_table(rows, COLUMNS)}")
    text = "\n\n".join(text) + f"\n\n{command_line()}"
    print(text)
    out["table"] = text
    print(f"wrote {write_results('ablation', out)}")

if __name__ == "__main__":
    main()
