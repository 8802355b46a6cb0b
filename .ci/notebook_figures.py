#!/usr/bin/env python
"""Copy the key figures of a pipeline run into nbs/images/, small, for the notebooks' markdown cells to embed.

The notebooks keep no outputs; their key figures are shown to a reader who opens them without running anything
by markdown cells (`![...](images/<name>.png)`) placed where the figure is made. The images come from one
deterministic run of the notebooks' own defaults, `marine-unet pipeline` (05_train with its defaults, seed 0;
06_evaluate and 07_infer on its best model, 07 with the decision 06 tuned). To regenerate them, from the clone, in
the project's virtual environment:

    marine-unet pipeline --out runs/figures          # about 10 minutes on 2 CPU cores, most of it 05's training
    python .ci/notebook_figures.py runs/figures      # writes the PNGs below into nbs/images/

Each figure is cropped to its content and stored as a 96-colour palette PNG (40 colours kept exact, those of flat
areas first, so class colours stay true), which keeps every file under 100 KB and the same run gives the same bytes.
`precision="auto"` trains in bfloat16 on a CPU with native bf16 and in float32 elsewhere, so the curves of a run
on another machine may differ slightly.
"""
import argparse, io, sys
from pathlib import Path
import numpy as np
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
# nbs/images/<name> <- <pipeline run folder>/<path>
FIGURES = {
    "train_curves.png": "curves.png",                                       # 05_train: plot_history
    "evaluate_confusion_matrix.png": "evaluate/figures/confusion_matrix.png",  # 06_evaluate: run_evaluation
    "evaluate_reliability.png": "evaluate/figures/reliability.png",           # 06_evaluate: run_evaluation
    "infer_map.png": "infer/map.png",                                        # 07_infer: save_map_figure
}

def small_png(src: Path, colors: int = 96, exact: int = 40, margin: int = 8) -> bytes:
    "`src` cropped to its non-white content (plus `margin`) as a `colors`-colour palette PNG, `exact` of its colours kept exact."
    image = Image.open(src).convert("RGB")
    box = ImageChops.difference(image, Image.new("RGB", image.size, (255, 255, 255))).getbbox()
    if box: image = image.crop((max(0, box[0] - margin), max(0, box[1] - margin),
                                min(image.width, box[2] + margin), min(image.height, box[3] + margin)))
    rgb = np.asarray(image)
    pixels = rgb.reshape(-1, 3)
    unique, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
    # exact: the colours of flat areas first (class colours, legend swatches, bars), by the pixels inside 3×3 blocks of
    # one colour, then the most frequent others
    inverse = inverse.reshape(rgb.shape[:2])
    centre, flat = inverse[1:-1, 1:-1], np.ones((rgb.shape[0] - 2, rgb.shape[1] - 2), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2): flat &= inverse[dy:dy + centre.shape[0], dx:dx + centre.shape[1]] == centre
    flat_counts = np.bincount(centre[flat], minlength=len(unique))
    order = np.lexsort((-counts, -np.where(flat_counts >= 20, flat_counts, 0)))   # flat count first, then frequency
    palette = [tuple(int(v) for v in c) for c in unique[order[:exact]]]
    # the other colours: a median cut of the distinct colours, each counted once (rare ones, as in a colour bar, get their share)
    distinct = Image.fromarray(unique[None].astype(np.uint8), "RGB")
    rest = distinct.quantize(colors=colors - len(palette), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette += [c for c in map(tuple, np.asarray(rest.getpalette()[:3 * (colors - len(palette))]).reshape(-1, 3).tolist()) if c not in palette]
    palette = np.array(palette[:colors], dtype=np.int64)
    # each colour to its nearest palette colour, exactly (PIL's own palette mapping goes by 5-bit colour cells)
    nearest = np.concatenate([((part[:, None, :].astype(np.int64) - palette[None]) ** 2).sum(-1).argmin(1)
                              for part in np.array_split(unique, max(1, len(unique) // 4096))])
    indexes = nearest[inverse.reshape(-1)]
    quantized = Image.fromarray(indexes.reshape(image.height, image.width).astype(np.uint8), "P")
    quantized.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    out = io.BytesIO()
    quantized.save(out, "PNG", optimize=True)
    return out.getvalue()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("run", help="the folder `marine-unet pipeline --out` wrote")
    ap.add_argument("--images", default=str(ROOT/"nbs"/"images"), help="where the PNGs go")
    args = ap.parse_args()
    run, images = Path(args.run), Path(args.images)
    missing = [str(run/p) for p in FIGURES.values() if not (run/p).is_file()]
    if missing: sys.exit("not a finished pipeline run folder, missing: " + ", ".join(missing))
    images.mkdir(parents=True, exist_ok=True)
    for name, path in FIGURES.items():
        data = small_png(run/path)
        (images/name).write_bytes(data)
        print(f"{images/name}: {len(data) / 1024:.0f} KB from {run/path}")

if __name__ == "__main__": main()
