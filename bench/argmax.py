"""Class maps from scores: `predicted_classes` (argmax along a contiguous last axis) against `argmax(1)` (issue 20).

Validation and the training figures turn every batch's scores (N, C, H, W) into classes. torch's CPU argmax over the
channel axis of an NCHW tensor walks a strided axis; `predicted_classes` moves the channels last first. Both give
the same classes (asserted here, and in 03a). The batch is validation's: 8 patches of 128², 11 classes, float32.

    python bench/argmax.py --threads 2
"""
from __future__ import annotations
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import torch
from marine_unet.forward import predicted_classes

COLUMNS = ["path", "ms", "× argmax(1)"]


def main():
    p = base_parser(__doc__.splitlines()[0])
    args = p.parse_args()
    threads = set_threads(args.threads)
    scores = torch.randn(8, 11, 128, 128, generator=torch.Generator().manual_seed(0))
    assert torch.equal(predicted_classes(scores), scores.argmax(1))
    repeats = 3 if args.quick else 50 * args.repeats
    rows = [{"path": name, "ms": 1e3 * time_fn(fn, repeats=repeats, warmup=5)["median_s"]}
            for name, fn in (("scores.argmax(1)", lambda: scores.argmax(1)), ("predicted_classes(scores)", lambda: predicted_classes(scores)))]
    rows[1]["× argmax(1)"] = rows[0]["ms"] / rows[1]["ms"]
    info = machine_info("cpu")
    text = f"{info['cpu']}, {threads} threads; scores {tuple(scores.shape)} float32, median of {repeats}\n\n{markdown_table(rows, COLUMNS, digits=2)}\n{command_line()}"
    print(text)
    write_results("argmax_quick" if args.quick else "argmax", {"machine": info, "command": command_line(), "threads": threads, "rows": rows, "table": text})


if __name__ == "__main__":
    main()
