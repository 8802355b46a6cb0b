"""How far bf16 autocast moves one training step, and whether the CPU's kernels change the numbers (issue 20).

1. Gradients of one step of the default model (TrainConfig defaults, one batch of the synthetic default dataset's
   training patches, the combined loss) in fp32 and in bf16 autocast, each in NCHW and channels-last, against the
   same step in float64: the relative error of the loss, the logits, all gradients together (the norm of the
   difference over the norm of the float64 gradients) and the worst parameter. Channels-last trained worse than
   NCHW on the archive family in bf16; this asks whether its arithmetic is less exact.
2. With `--epochs N`: short default trainings in fp32 and bf16 (2 threads), each reduced to its training losses and
   the SHA-256 of the last model's bytes. Run it twice, once with oneDNN limited to an older instruction set, and
   compare the two results files: equal hashes mean that arithmetic does not depend on which kernels the CPU gets.

    python bench/bf16_gradients.py --epochs 3 --name bf16_gradients
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/bf16_gradients.py --epochs 3 --name bf16_gradients_avx512
"""
from __future__ import annotations
import copy, hashlib, json, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import torch

from marine_unet.core import set_seed
from marine_unet.synthetic import synthetic_marida_dir
from marine_unet.model import build_model
from marine_unet.loss import build_loss
from marine_unet.train import TrainConfig, check_config, make_train_val_datasets, _class_weight_vector, epoch_loader, train


def step(model: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor, loss_fn, bf16: bool) -> dict:
    "Loss, logits and gradients (as float64) of one training step of `model` on one batch."
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(image)
    loss = loss_fn(logits.float() if bf16 else logits, mask)
    loss.backward()
    return {"loss": loss.item(), "logits": logits.detach().double(),
            "grads": {n: p.grad.detach().double() for n, p in model.named_parameters() if p.grad is not None}}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    "‖a − b‖ / ‖b‖."
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def gradient_errors() -> list[dict]:
    "One step in fp32 / bf16 × NCHW / channels-last against float64, on the default model and one batch."
    cfg = check_config(TrainConfig(device="cpu", progress=False))
    set_seed(cfg.seed, cfg.deterministic)
    train_ds, _, mean, std = make_train_val_datasets(synthetic_marida_dir(), cfg)
    loss_fn = build_loss(cfg.loss, class_weights=_class_weight_vector(cfg, train_ds))
    batch = next(iter(epoch_loader(train_ds, cfg, 1)))
    base = build_model(cfg.arch, encoder=cfg.encoder, in_channels=len(cfg.bands), classes=cfg.protocol, bands=list(cfg.bands),
                       features=cfg.features, mean=mean, std=std).train()
    reference = step(copy.deepcopy(base).double(), batch["image"].double(), batch["mask"], loss_fn, bf16=False)
    total = torch.cat([g.flatten() for g in reference["grads"].values()])
    rows = []
    for layout in ("NCHW", "channels-last"):
        for bf16 in (False, True):
            model, image = copy.deepcopy(base), batch["image"]
            if layout == "channels-last":
                model, image = model.to(memory_format=torch.channels_last), image.contiguous(memory_format=torch.channels_last)
            got = step(model, image, batch["mask"], loss_fn, bf16)
            per = {n: relative(got["grads"][n], g) for n, g in reference["grads"].items()}
            worst = max(per, key=per.get)
            rows.append({"step": f"{'bf16' if bf16 else 'fp32'} {layout}", "loss rel. error": abs(got["loss"] / reference["loss"] - 1),
                         "logits rel. error": relative(got["logits"], reference["logits"]),
                         "gradients rel. error": relative(torch.cat([got["grads"][n].flatten() for n in reference["grads"]]), total),
                         "worst parameter": worst, "its rel. error": per[worst]})
    return rows


def short_trainings(epochs: int) -> list[dict]:
    "Default trainings of `epochs` epochs in fp32 and bf16: training losses and the last model's SHA-256."
    rows = []
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory() as out:
            train(epochs=epochs, precision=precision, out_dir=out, progress=False, tensorboard=False)
            history = json.loads((Path(out) / "history.json").read_text())
            digest = hashlib.sha256((Path(out) / "last_model" / "model.safetensors").read_bytes()).hexdigest()
        rows.append({"precision": precision, "train losses": " ".join(f"{e['train_loss']:.8f}" for e in history), "model SHA-256": digest[:16]})
    return rows


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=0, help="also run short fp32 and bf16 trainings of this many epochs (0: none)")
    p.add_argument("--name", default="bf16_gradients", help="results file name (results/NAME.json)")
    args = p.parse_args()
    threads = set_threads(args.threads or 2)
    info = machine_info("cpu") | {"ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}
    rows = gradient_errors()
    trainings = short_trainings(args.epochs) if args.epochs else []
    text = (f"{info['cpu']}, {threads} threads, ONEDNN_MAX_CPU_ISA={info['ONEDNN_MAX_CPU_ISA'] or '(not set)'}; one step of the default model "
            f"against float64\n\n{markdown_table(rows, digits=6)}\n" + (f"\n{markdown_table(trainings)}\n" if trainings else "") + command_line())
    print(text)
    write_results(args.name, {"machine": info, "command": command_line(), "threads": threads, "gradients": rows,
                              "trainings": trainings, "table": text})


if __name__ == "__main__":
    main()
