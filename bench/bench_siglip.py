"""Faces per second of the real-size SigLIP2 so400m/16 @384 vision tower (random weights).

Weights do not change speed, so a randomly initialised tower of the real shape measures what the
real google/siglip2-so400m-patch16-384 costs per face. Usage:
    python bench/bench_siglip.py [--device cpu|cuda] [--batch 1] [--reps 3] [--precisions fp32,bf16]
Prints one JSON line per precision; compare precisions as a ratio from the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              image_size=384, patch_size=16)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(**SO400M)).eval().to(args.device)
    params = sum(p.numel() for p in model.parameters())
    results = {}
    for name in args.precisions.split(","):
        model.to(DTYPES[name])
        pixels = torch.randn(args.batch, 3, 384, 384, device=args.device, dtype=DTYPES[name])
        with torch.inference_mode():
            model(pixel_values=pixels)  # warm-up
            times = []
            for _ in range(args.reps):
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model(pixel_values=pixels).pooler_output.float().cpu()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        best = min(times)
        results[name] = args.batch / best
        print(json.dumps({"precision": name, "device": args.device, "batch": args.batch,
                          "threads": torch.get_num_threads(), "params_millions": round(params / 1e6, 1),
                          "s_per_face": round(best / args.batch, 4), "faces_per_s": round(args.batch / best, 3),
                          "runs_s": [round(t, 3) for t in times]}), flush=True)
    if "fp32" in results and "bf16" in results:
        print(json.dumps({"bf16_over_fp32_speed": round(results["bf16"] / results["fp32"], 2)}))


if __name__ == "__main__":
    main()
