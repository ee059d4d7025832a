"""How far bf16 and int8 move the scores from fp32, and what they save, on real-size random weights.

  python bench/bench_precision.py faces [FACES]           real-size SigLIP2 so400m tower + 44 Face-Small
                                                          heads (1152 -> 128 -> 32 -> 1): fp32 against
                                                          bf16, on FACES (default 48) crops of the
                                                          scikit-image astronaut, jittered
  python bench/bench_precision.py voice [SEGMENTS] [HEADS]
                                                          real-size Whisper-small encoder on SEGMENTS
                                                          (default 8) 5 s windows of espeak-ng speech,
                                                          then the 40 Voice-Small emotion heads (proj
                                                          1,152,000 -> 64 -> 64 -> 32 -> 16 -> 1),
                                                          made one at a time: fp32 against bf16,
                                                          int8 first layers with bf16 activations, and
                                                          int8 with fp32 activations; HEADS (default 8)
                                                          of them fused for the time per segment

  python bench/bench_precision.py load [HEADS]            HEADS (default 8) real-size Voice-Small head
                                                          files written as the hub holds them, loaded
                                                          from the files (cold) and from their stacked
                                                          copy (warm), for bf16 and int8, times scaled
                                                          to 55 heads

Weights are random (the real ones cannot be downloaded here), so the figures are about arithmetic,
not about LAION's trained heads: the raw outputs' differences, set against the spread of the raw
scores across the 40 emotions, and how often the top-1 / top-3 / top-5 emotions stay the same.
The voice heads get the replicas' gain on the projection (most of the 1500 positions are the
window's padding; without it every segment scores alike). Speeds are ratios from one run. Prints
one JSON line. Threads: $OMP_NUM_THREADS (default: all cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from empathic.models.heads import FusedHeads  # noqa: E402
from empathic.models.runtime import native_bf16  # noqa: E402

EMOTIONS = 40
SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              image_size=384, patch_size=16)


def best_time(fn, runs: int = 2) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(reference: np.ndarray, other: np.ndarray) -> dict:
    """Raw differences and rank agreement over the first 40 columns (the emotions)."""
    diff = np.abs(other - reference)
    spread = float(np.mean(np.std(reference[:, :EMOTIONS], axis=1)))

    def top(k: int) -> float:
        a = np.argsort(-reference[:, :EMOTIONS], axis=1)[:, :k]
        b = np.argsort(-other[:, :EMOTIONS], axis=1)[:, :k]
        return float(np.mean([set(x) == set(y) for x, y in zip(a, b)]))

    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "raw_spread_across_emotions": spread, "max_diff_over_spread": float(diff.max()) / spread,
            "top1_same": top(1), "top3_same": top(3), "top5_same": top(5)}


def face_crops(count: int) -> torch.Tensor:
    from skimage.data import astronaut
    from skimage.transform import resize

    photo = astronaut().astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(count):
        size = int(rng.integers(140, 260))
        top, left = int(rng.integers(0, 60)), int(rng.integers(120, 220))
        crop = photo[top:top + size, left:left + size] * rng.uniform(0.7, 1.3) + rng.normal(0, 0.02)
        crops.append(resize(np.clip(crop, 0, 1), (384, 384), anti_aliasing=True))
    pixels = (np.stack(crops) - 0.5) / 0.5  # SigLIP's normalisation
    return torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32))


def bench_faces(count: int) -> dict:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    tower = SiglipVisionModel(SiglipVisionConfig(**SO400M)).eval()
    generator = torch.Generator().manual_seed(1)
    heads = [[(torch.empty(o, i).uniform_(-1, 1, generator=generator) / i ** 0.5,
               torch.empty(o).uniform_(-1, 1, generator=generator) / i ** 0.5)
              for i, o in ((1152, 128), (128, 32), (32, 1))] for _ in range(44)]
    pixels = face_crops(count)
    raw, seconds = {}, {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        tower.to(dtype)
        fused = FusedHeads(heads, dtype=dtype)

        @torch.inference_mode()
        def run(batch):
            pooled = tower(pixel_values=batch.to(dtype)).pooler_output.float()
            return fused(torch.nn.functional.normalize(pooled, dim=-1)).numpy()

        raw[name] = np.concatenate([run(pixels[i:i + 8]) for i in range(0, count, 8)])
        seconds[name] = best_time(lambda: run(pixels[:8])) / 8
    return {"mode": "faces", "faces": count, "threads": torch.get_num_threads(), "native_bf16": native_bf16(),
            "seconds_per_face": seconds, "bf16_speedup": seconds["fp32"] / seconds["bf16"],
            "bf16_vs_fp32": compare(raw["fp32"], raw["bf16"])}


def speech_windows(count: int) -> list[np.ndarray]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed for the voice windows (apt-get install espeak-ng)")
    from empathic.audio import decode_audio

    sentences = ["I can't believe you did that, this is wonderful news", "Please leave me alone, I am tired",
                 "What on earth is going on here", "Well, I suppose that is fine with me",
                 "Stop it right now, I mean it", "Oh no, that is terrible, I am so sorry"]
    clips = []
    folder = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    for n in range(count):
        path = folder / f"{n}.wav"
        subprocess.run(["espeak-ng", "-v", ["en", "en-us", "en-gb"][n % 3], "-s", str(140 + 10 * (n % 4)),
                        "-w", str(path), sentences[n % len(sentences)]], check=True)
        clips.append(decode_audio(path).window(0, 5))  # 16 kHz mono, as the pipeline decodes
    shutil.rmtree(folder, ignore_errors=True)
    return clips


def voice_head(generator: torch.Generator, inputs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dims = (inputs, 64, 64, 32, 16, 1)
    layers = []
    for index, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
        bound = (40.0 if index == 0 else 1.0) / i ** 0.5  # the replicas' projection gain
        layers.append((torch.empty(o, i).uniform_(-1, 1, generator=generator) * bound,
                       torch.empty(o).uniform_(-1, 1, generator=generator) * bound))
    return layers


def bench_voice(count: int, timed_heads: int) -> dict:
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    config = WhisperConfig(num_mel_bins=80, d_model=768, encoder_layers=12, encoder_attention_heads=12,
                           encoder_ffn_dim=3072, max_source_positions=1500)
    encoder = WhisperEncoder(config).eval()
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    features = extractor(speech_windows(count), sampling_rate=16000, return_tensors="pt",
                         padding="max_length", truncation=True)["input_features"]
    states, encoder_s = {}, {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        encoder.to(dtype)
        with torch.inference_mode():
            states[name] = torch.cat([encoder(input_features=features[i:i + 4].to(dtype)).last_hidden_state
                                      for i in range(0, count, 4)]).reshape(count, -1)
            encoder_s[name] = best_time(lambda: encoder(input_features=features[:2].to(dtype)), runs=1) / 2
    inputs = states["fp32"].shape[1]
    modes = {"fp32": (torch.float32, "dense", "fp32"), "bf16": (torch.bfloat16, "dense", "bf16"),
             "int8_bf16": (torch.bfloat16, "int8", "bf16"), "int8_fp32": (torch.float32, "int8", "fp32")}
    raw = {mode: [] for mode in modes}
    generator = torch.Generator().manual_seed(2)
    for _ in range(EMOTIONS):  # one head at a time: 40 real-size heads would not fit four times over
        head = voice_head(generator, inputs)
        for mode, (dtype, first_layer, activations) in modes.items():
            fused = FusedHeads([head], dtype=dtype, first_layer=first_layer)
            raw[mode].append(fused(states[activations]).numpy()[:, 0])
            del fused
    raw = {mode: np.stack(columns, axis=1) for mode, columns in raw.items()}
    timing, memory = {}, {}
    group = states["fp32"].repeat(64 // count + 1, 1)[:64]
    heads = [voice_head(generator, inputs) for _ in range(timed_heads)]
    for mode, (dtype, first_layer, activations) in modes.items():
        fused = FusedHeads(heads, dtype=dtype, first_layer=first_layer)
        batch = group.to(torch.bfloat16 if activations == "bf16" else torch.float32)
        timing[mode] = best_time(lambda: fused(batch), runs=1) / 64 * 55 / timed_heads
        memory[mode] = fused.nbytes / timed_heads * 55 / 1e9
        del fused
    return {"mode": "voice", "segments": count, "threads": torch.get_num_threads(), "native_bf16": native_bf16(),
            "encoder_seconds_per_segment": encoder_s,
            "encoder_bf16_speedup": encoder_s["fp32"] / encoder_s["bf16"],
            "heads_seconds_per_segment_55_heads_batch_64": timing,
            "heads_gb_55": memory,
            "vs_fp32": {mode: compare(raw["fp32"], raw[mode]) for mode in modes if mode != "fp32"}}


def drop_page_cache() -> bool:
    """Whether the kernel's page cache could be emptied (root only), so that cold loads read the disk."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def bench_load(count: int) -> dict:
    from empathic.models.head_stack import load_stacked_heads

    folder = Path(tempfile.mkdtemp(prefix="bench-heads-"))
    generator = torch.Generator().manual_seed(3)
    paths = []
    for n in range(count):
        head = voice_head(generator, 1500 * 768)
        names = ["proj"] + [f"mlp.{2 + 3 * i}" for i in range(len(head) - 1)]
        state = {f"{name}.{kind}": tensor for name, (w, b) in zip(names, head)
                 for kind, tensor in (("weight", w), ("bias", b))}
        paths.append(folder / f"model_{n}_best.pth")
        torch.save(state, paths[-1])
    results = {}
    try:
        for name, dtype, first_layer in (("bf16", torch.bfloat16, "dense"), ("int8", torch.bfloat16, "int8")):
            cache = folder / f"stack-{name}"
            dropped = drop_page_cache()
            start = time.perf_counter()
            load_stacked_heads(paths, dtype, "cpu", first_layer, cache)  # reads the files, writes the stack
            cold = time.perf_counter() - start
            drop_page_cache()
            start = time.perf_counter()
            heads = load_stacked_heads(paths, dtype, "cpu", first_layer, cache)
            warm_map = time.perf_counter() - start
            start = time.perf_counter()
            heads(torch.zeros(1, heads.input_size, dtype=dtype))  # first use pages the weights in
            warm_first_use = time.perf_counter() - start
            results[name] = {"cold_load_and_write_s_55": cold * 55 / count,
                             "warm_map_s_55": warm_map * 55 / count,
                             "warm_first_pass_s_55": warm_first_use * 55 / count,
                             "stack_gb_55": sum(p.stat().st_size for p in cache.glob("*.safetensors")) * 55 / count / 1e9,
                             "page_cache_dropped": dropped}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"mode": "load", "heads": count, "threads": torch.get_num_threads(), **results}


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "faces"
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    if mode == "faces":
        result = bench_faces(int(sys.argv[2]) if len(sys.argv) > 2 else 48)
    elif mode == "load":
        result = bench_load(int(sys.argv[2]) if len(sys.argv) > 2 else 8)
    elif mode == "voice":
        result = bench_voice(int(sys.argv[2]) if len(sys.argv) > 2 else 8, int(sys.argv[3]) if len(sys.argv) > 3 else 8)
    else:
        raise SystemExit(f"unknown mode {mode!r}: faces, voice or load")
    print(json.dumps(result, default=lambda v: round(v, 5) if isinstance(v, float) else str(v)))


if __name__ == "__main__":
    main()
