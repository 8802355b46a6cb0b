"""Same numbers as another version? Short trainings, a scene prediction and evaluations, each reduced to a line of
scores and SHA-256 prefixes of the model and map bytes. Run it once with PYTHONPATH at an older checkout and once
without, and compare the two outputs line for line (`diff`): a refactor that changes no behaviour prints the same.

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old python bench/same_numbers.py --work /tmp/same-old > old.txt
    python bench/same_numbers.py --work /tmp/same-new > new.txt && diff old.txt new.txt
"""
import argparse, hashlib, json, os, sys
from pathlib import Path
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1"); os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

CONFIGS = {"plain": {}, "train_norm": {"normalize": "train", "bands": "B2,B3,B4,B8,B11"},
           "ema_cutmix": {"ema_decay": 0.5, "cutmix": 0.5, "accumulate": 2}}   # what each short training changes

def digest(path: Path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()[:16]

def pixels(path: Path) -> str:
    import rasterio
    with rasterio.open(path) as src: return hashlib.sha256(src.read().tobytes()).hexdigest()[:16]

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="an empty scratch folder")
    work = Path(ap.parse_args().work); os.environ["MARINE_UNET_CACHE"] = str(work/"cache")
    torch.set_num_threads(1)
    import marine_unet   # the generator moved from data to synthetic in the tidy-up; an older checkout has it in data
    if (Path(marine_unet.__file__).parent/"synthetic.py").exists(): from marine_unet.synthetic import make_synthetic_marida
    else: from marine_unet.data import make_synthetic_marida
    from marine_unet.train import TrainConfig, train
    from marine_unet.infer import predict_scene
    from marine_unet.evaluate import evaluate_model
    data = make_synthetic_marida(work/"data", scenes=6, patches_per_scene=3, size=64, seed=3)
    for name, extra in CONFIGS.items():
        train(TrainConfig(data_dir=str(data), out_dir=str(work/name), epochs=3, batch_size=2, encoder="resnet18", device="cpu",
                          progress=False, cache=False, seed=1, **extra))
        m = json.loads((work/name/"metrics.json").read_text())
        print(f"train {name}: macro_f1 {m['macro_f1']:.6f} miou {m['miou']:.6f} best_model {digest(work/name/'best_model'/'model.safetensors')}")
    scene = sorted((data/"patches").rglob("*_[0-9].tif"))[0]
    predict_scene(work/"plain", scene, work/"map.tif", tile=32, overlap=8, batch_size=3, probabilities=True, progress=False)
    print(f"predict_scene: map {pixels(work/'map.tif')} probabilities {pixels(work/'map_probabilities.tif')}")
    for tta in (False, True):
        m = evaluate_model(work/"plain"/"best_model", data, "test", batch_size=2, tta=tta)
        print(f"evaluate tta={tta}: macro_f1 {m['macro_f1']:.6f} accuracy {m['accuracy']:.6f}")

if __name__ == "__main__": main()
