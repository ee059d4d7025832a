"""One table of what a CUDA machine does with the real-size models (bench/gpu.sh runs this).

  python bench/gpu_bench.py [--minutes 10] [--work DIR] [--json]   on a CUDA GPU, about 5 minutes
  python bench/gpu_bench.py --cpu-smoke [--json]                    tiny sizes, 4 s of media, CPU

Rows (random weights of the real shapes, built as bench/compare.py builds them):
  SigLIP so400m bf16, batch 16 / 64 / 128  faces/s of the vision tower alone, on random pixels
  faces: project                            analyze_faces on a generated 1280x720 video of two
                                            talking faces (--minutes, default 10) at pps 1: faces/s
                                            and times real time
  faces: baseline                           bench/compare.py's peer-structured baseline on the same
                                            video (seek + read per sample, one face per fp32 call,
                                            one nn.Sequential per head); the project's speed-up
  voice heads resident, bf16 / int8         GPU memory held by all 55 Voice-Small heads (proj
                                            1,152,000 -> 64 -> 64 -> 32 -> 16 -> 1), fused
  voice: project, bf16 / int8 heads         analyze_voice over the video's sound, 5 s windows, all
                                            55 heads: segments/s and times real time
  voice: baseline                           compare.py's baseline (one segment per encoder call,
                                            one fp32 nn.Sequential call per head and segment)

The project runs on ``make_runtime("cuda", "auto")`` (bf16). --cpu-smoke runs every row with the
tests' tiny sizes on the CPU, so that the script is exercised by the test suite
(tests/test_bench_smoke.py); its figures mean nothing. Needs ffmpeg and espeak-ng for the video.
Rows are logged to stderr as they are measured, then printed as one table (--json: one JSON line).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402  (sets up the environment: offline hub, sys.path)
import torch  # noqa: E402

from empathic.models.heads import FusedHeads  # noqa: E402
from empathic.models.runtime import make_runtime  # noqa: E402

from compare import (VOICE_HEADS, WHISPER_POSITIONS, Clip, Measured, PeerFaces, PeerVoice,  # noqa: E402
                     ProjectFaces, ProjectVoice, log, release, sequential_head)

BATCHES = (16, 64, 128)
SMOKE_BATCHES = (2, 4, 8)


class Table:
    """Rows of (name, value, unit, times real time, speed-up against the baseline)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, name: str, value: float, unit: str, realtime: float | None = None,
            speedup: float | None = None, **extra) -> None:
        row = {"name": name, "value": round(value, 4), "unit": unit,
               "x_real_time": None if realtime is None else round(realtime, 3),
               "speedup_vs_baseline": None if speedup is None else round(speedup, 3), **extra}
        self.rows.append(row)
        log(f"{name}: {row['value']} {unit}" + (f", {realtime:.2f}x real time" if realtime else "")
            + (f", {speedup:.2f}x the baseline" if speedup else ""))

    def print(self, title: str) -> None:
        print(title)
        print(f"{'':40}{'value':>12}  {'unit':12}{'x real time':>12}{'vs baseline':>13}")
        for r in self.rows:
            realtime = "" if r["x_real_time"] is None else f"{r['x_real_time']:.1f}x"
            speedup = "" if r["speedup_vs_baseline"] is None else f"{r['speedup_vs_baseline']:.2f}x"
            print(f"{r['name']:40}{r['value']:12.3f}  {r['unit']:12}{realtime:>12}{speedup:>13}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def siglip_rate(tower: torch.nn.Module, batch: int, device: torch.device, dtype: torch.dtype,
                reps: int = 3) -> float:
    """Faces per second of the tower on ``batch`` random 384 x 384 images (best of ``reps``)."""
    pixels = torch.randn(batch, 3, 384, 384, device=device, dtype=dtype)
    tower(pixel_values=pixels)  # warm-up: kernels chosen, memory pooled
    best = math.inf
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        tower(pixel_values=pixels).pooler_output.float().cpu()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return batch / best


def random_voice_heads(count: int, sizes: compare.Sizes, device: torch.device,
                       seed: int = 0) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """``count`` Voice-Small-shaped heads in fp32 on ``device`` (16.2 GB for 55 at the real size)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    dims = (WHISPER_POSITIONS * sizes.whisper["d_model"], *sizes.voice_hidden, 1)
    heads = []
    for _ in range(count):
        heads.append([(torch.empty(o, i, device=device).uniform_(-1, 1, generator=generator) / i ** 0.5,
                       torch.empty(o, device=device).uniform_(-1, 1, generator=generator) / i ** 0.5)
                      for i, o in zip(dims[:-1], dims[1:])])
    return heads


def fused_resident(heads, dtype: torch.dtype, device: torch.device, first_layer: str
                   ) -> tuple[FusedHeads, float]:
    """The fused heads and the memory they hold, in GB: CUDA's allocation, or their bytes on a CPU."""
    synchronize(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    fused = FusedHeads(heads, dtype=dtype, device=device, first_layer=first_layer)
    synchronize(device)
    held = (torch.cuda.memory_allocated(device) - before) if device.type == "cuda" else fused.nbytes
    return fused, held / 1e9


def voice_rows(table: Table, clip: Clip, cache: Path, sizes: compare.Sizes, runtime, device) -> None:
    audio_s = clip.duration_s
    weights = random_voice_heads(VOICE_HEADS, sizes, device)
    project = ProjectVoice(cache, runtime, heads=1)
    warm = compare.decode_audio(clip.path).window(0.0, compare.SEGMENT_S)
    runs: dict[str, Measured] = {}
    for first_layer, name in (("dense", runtime.precision_name), ("int8", "int8")):
        fused, gb = fused_resident(weights, runtime.dtype, device, first_layer)
        table.add(f"voice heads resident, {name}", gb, "GB", heads=VOICE_HEADS)
        project.use_heads(fused)
        project.warm_up(warm)
        runs[name] = project.run(clip)
        log(f"voice: project, {name} heads {runs[name].wall_s:.1f} s for {runs[name].items} segments")
        project.use_heads(torch.nn.Identity())  # the fused heads are freed before the next are built
        del fused
        release()
    del project
    release()
    peer = PeerVoice(cache, device, heads={str(i): sequential_head(layers) for i, layers in enumerate(weights)})
    peer.score(warm)
    baseline = peer.run(clip)
    del peer, weights
    release()
    for name, run in runs.items():
        table.add(f"voice: project, {name} heads", run.items / run.wall_s, "segments/s", audio_s / run.wall_s,
                  baseline.wall_s / run.wall_s, wall_s=round(run.wall_s, 3),
                  model_share=round(run.model_s / run.wall_s, 4))
    table.add("voice: baseline", baseline.items / baseline.wall_s, "segments/s", audio_s / baseline.wall_s,
              wall_s=round(baseline.wall_s, 3), model_share=round(baseline.model_s / baseline.wall_s, 4))


def face_rows(table: Table, clip: Clip, cache: Path, runtime, device, batches, pps: float) -> None:
    project = ProjectFaces(cache, runtime)
    tower = project.model.embedder.model
    for batch in batches:
        table.add(f"SigLIP so400m {runtime.precision_name}, batch {batch}",
                  siglip_rate(tower, batch, device, runtime.dtype), "faces/s")
    crop = compare.warm_up_inputs(clip)[0]
    project.warm_up(crop)
    ours = project.run(clip, pps)
    log(f"faces: project {ours.wall_s:.1f} s for {ours.items} faces; now the baseline")
    del project, tower
    release()
    peer = PeerFaces(cache, device)
    peer.score(crop)
    baseline = peer.run(clip, pps)
    del peer
    release()
    table.add("faces: project", ours.items / ours.wall_s, "faces/s", clip.duration_s / ours.wall_s,
              baseline.wall_s / ours.wall_s, wall_s=round(ours.wall_s, 3), faces=ours.items,
              model_share=round(ours.model_s / ours.wall_s, 4))
    table.add("faces: baseline", baseline.items / baseline.wall_s, "faces/s", clip.duration_s / baseline.wall_s,
              wall_s=round(baseline.wall_s, 3), faces=baseline.items,
              model_share=round(baseline.model_s / baseline.wall_s, 4))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny sizes, 4 s of 480x270 media, on the CPU (the test suite's run)")
    parser.add_argument("--minutes", type=float, help="video length (default 10; smoke: 4 s)")
    parser.add_argument("--pps", type=float, default=1.0)
    parser.add_argument("--work", type=Path, help="keep the replica hub and media here and reuse them")
    parser.add_argument("--json", action="store_true", help="also print the rows as one JSON line")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu_smoke:
        device, sizes, batches = torch.device("cpu"), compare.SIZES["tiny"], SMOKE_BATCHES
        seconds, width, height = (args.minutes or 4 / 60) * 60, 480, 270
    else:
        if not torch.cuda.is_available():
            print("gpu_bench: PyTorch sees no CUDA GPU (use --cpu-smoke for the CPU check)", file=sys.stderr)
            return 2
        device, sizes, batches = torch.device("cuda"), compare.SIZES["real"], BATCHES
        seconds, width, height = (args.minutes or 10) * 60, 1280, 720
    runtime = make_runtime(str(device), "auto")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    table = Table()
    try:
        log(f"media and weights in {work}")
        clip = compare.make_clip(work / "media", seconds, width, height)
        cache = compare.build_hub(work / "hub", sizes, voice_heads=1)
        face_rows(table, clip, cache, runtime, device, batches, args.pps)
        voice_rows(table, clip, cache, sizes, runtime, device)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: tiny sizes)"
    setup = {"device": name, "sizes": sizes.name, "precision": runtime.precision_name,
             "video_s": round(clip.duration_s, 2), "width": clip.width, "height": clip.height, "pps": args.pps,
             "voice_window_s": compare.SEGMENT_S, "voice_heads": VOICE_HEADS}
    table.print(f"{name}: {sizes.name}-size random weights, {setup['precision']}; {clip.duration_s / 60:.1f} min "
                f"{clip.width}x{clip.height} video of two talking faces at pps {args.pps:g}; voice in "
                f"{compare.SEGMENT_S:g} s windows, {VOICE_HEADS} heads")
    if args.json:
        print(json.dumps({"setup": setup, "rows": table.rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
