"""Voice model cost per 5 s segment, batched against unbatched.

  python bench/bench_voice.py tiny [SEGMENTS]       the whole voice pipeline with the tiny replicas:
                                                    seconds per segment (decode, segment, features,
                                                    encoder, heads, scoring)
  python bench/bench_voice.py real [BATCH] [HEADS]  real-size Whisper-small encoder and HEADS (55)
                                                    Voice-Small heads (64 x 1,152,000 projection
                                                    each; 16.2 GB in fp32), random weights; one
                                                    segment per call against BATCH segments per
                                                    head pass (default 64, the pipeline's)

Precision and device: $BENCH_DEVICE (cpu | cuda, default: cuda when present) and $BENCH_PRECISION
(fp32 | bf16 | fp16; default fp32 on CPU, bf16 on CUDA). Prints one JSON line; the figures that
matter are the ratios measured within one run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="bench-hub-"))
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from empathic.models.runtime import make_runtime  # noqa: E402

SEGMENT_S = 5.0


def timed(fn, runs: int = 3):
    times = []
    for _ in range(runs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def runtime_from_env():
    return make_runtime(os.environ.get("BENCH_DEVICE", "auto"), os.environ.get("BENCH_PRECISION", "auto"))


def bench_tiny(segments: int) -> dict:
    from empathic.hub import WeightSources
    from empathic.models.voice import VoiceEmotionModel
    from empathic.voice_analysis import analyze_voice
    from media_factory import write_wav
    from replicas import build_voice_replicas

    build_voice_replicas(Path(os.environ["HF_HUB_CACHE"]))
    runtime = runtime_from_env()
    model = VoiceEmotionModel.load("small", WeightSources(), runtime)
    rng = np.random.default_rng(0)
    path = write_wav(Path(tempfile.mkdtemp()) / "noise.wav",
                     (rng.standard_normal(int(segments * SEGMENT_S * 16000)) * 0.05).astype(np.float32))
    analyze_voice(path, model)  # warm-up
    seconds, analysis = timed(lambda: analyze_voice(path, model))
    return {"mode": "tiny", "device": str(runtime.device), "precision": runtime.precision_name,
            "segments": len(analysis.segments), "seconds": round(seconds, 4),
            "seconds_per_segment": round(seconds / len(analysis.segments), 5)}


def bench_real(batch: int, heads: int) -> dict:
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from empathic.models.heads import FusedHeads

    runtime = runtime_from_env()
    device, dtype = runtime.device, runtime.dtype
    torch.manual_seed(0)
    # whisper-small: d_model 768, 12 layers, 12 heads, FFN 3072, 80 mel bins, 1500 positions
    config = WhisperConfig(num_mel_bins=80, d_model=768, encoder_layers=12, encoder_attention_heads=12,
                           encoder_ffn_dim=3072, max_source_positions=1500)
    encoder = WhisperEncoder(config).to(device, dtype).eval()
    extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    inputs = 1500 * 768
    start = time.perf_counter()

    def random_heads():
        generator = torch.Generator().manual_seed(1)
        for _ in range(heads):  # Voice-Small shapes: proj 64, then 64, 32, 16, 1
            dims = (inputs, 64, 64, 32, 16, 1)
            yield [(torch.empty(o, i).uniform_(-1, 1, generator=generator) / i ** 0.5, torch.zeros(o))
                   for i, o in zip(dims[:-1], dims[1:])]

    fused = FusedHeads(random_heads(), dtype=dtype, device=device, num_heads=heads)
    build_s = time.perf_counter() - start
    weight_gb = fused.first_weight.numel() * fused.first_weight.element_size() / 1e9
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(SEGMENT_S * 16000)) * 0.05).astype(np.float32)
             for _ in range(min(batch, 8))]

    def features(chunk):
        return extractor(chunk, sampling_rate=16000, return_tensors="pt", padding="max_length",
                         truncation=True)["input_features"]

    @torch.inference_mode()
    def encode(feats):
        return encoder(input_features=feats.to(device, dtype)).last_hidden_state

    def run(chunk):
        feats = features(chunk)
        states = encode(feats)
        return fused(states)

    run(clips[:1])  # warm-up
    feature_1, feats1 = timed(lambda: features(clips[:1]))
    encoder_1, states1 = timed(lambda: encode(feats1))
    heads_1, _ = timed(lambda: fused(states1))
    # The encoder gains nothing from batching on a CPU: 8 clips show its per-segment cost. The
    # heads are timed over the whole group (the pipeline's SEGMENTS_PER_HEAD_PASS).
    encoder_clips = clips[:min(batch, 8)]
    feature_b, feats_b = timed(lambda: features(encoder_clips), runs=2)
    encoder_b, states_b = timed(lambda: encode(feats_b), runs=2)
    group = states_b.repeat((batch + len(encoder_clips) - 1) // len(encoder_clips), 1, 1)[:batch]
    heads_b, _ = timed(lambda: fused(group), runs=2)
    per_feature_b = feature_b / len(encoder_clips)
    per_encoder_b = encoder_b / len(encoder_clips)
    unbatched = feature_1 + encoder_1 + heads_1
    batched = per_feature_b + per_encoder_b + heads_b / batch
    return {
        "mode": "real", "device": str(device), "precision": runtime.precision_name,
        "threads": torch.get_num_threads(), "heads": heads, "head_weights_gb": round(weight_gb, 2),
        "heads_build_s": round(build_s, 1), "batch": batch,
        "unbatched_s_per_segment": {"features": round(feature_1, 4), "encoder": round(encoder_1, 4),
                                    "heads": round(heads_1, 4), "total": round(unbatched, 4)},
        "encoder_batch": len(encoder_clips),
        "batched_s_per_segment": {"features": round(per_feature_b, 4),
                                  "encoder": round(per_encoder_b, 4),
                                  "heads": round(heads_b / batch, 4), "total": round(batched, 4)},
        "batched_speedup": round(unbatched / batched, 2),
        "heads_speedup": round(heads_1 / (heads_b / batch), 2),
    }


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1))))
    if mode == "tiny":
        result = bench_tiny(int(sys.argv[2]) if len(sys.argv) > 2 else 24)
    elif mode == "real":
        result = bench_real(int(sys.argv[2]) if len(sys.argv) > 2 else 64, int(sys.argv[3]) if len(sys.argv) > 3 else 55)
    else:
        raise SystemExit(f"unknown mode {mode!r}: tiny or real")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
