"""Live sessions: latency and the highest face rate sustained without skipping, on one machine.

  python bench/bench_live.py [--size tiny|real] [--seconds 20] [--pps-list 1,2,5,10] [--faces 2|4] [--max-faces N]
                             [--window 10 --hop 3] [--voice-heads 8] [--device cpu|cuda|auto]
                             [--precision auto] [--work DIR] [--json]

The stream: bench/compare.py's generated talking-faces clip at 1280x720 (two faces; --faces 4 puts two
copies side by side and scales back to 1280x720, four smaller faces), played by ``LiveSource`` at its
own rate (``realtime``) exactly as ``empathic live --realtime`` plays a file, so decoding, pacing,
sampling, the one-place slots and the model threads are the real ones.

For each face rate of --pps-list, one session of --seconds: samples offered, processed and skipped,
latency p50/p95/max (seconds from a frame's arrival to its event). "Sustained" is the highest rate
whose session skipped at most 2 % of its samples. Then one voice session (--window/--hop): windows,
latency p50/p95 against the goal of hop + 0.5 s.

Weights: bench/compare.py's replica hub, tiny (the tests' sizes) or real (SigLIP2 so400m, Face-Small,
Whisper-small, Voice-Small's first --voice-heads heads: 55 real-size heads are 16 GB in fp32; the
table says how many were loaded). Goals on a GPU: faces at >= 5 pps for 4 people with p95 latency
under 250 ms, voice windows within hop + 0.5 s. Nothing reaches the network.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402  (sets the offline environment and the import paths first)
from compare import SIZES, build_hub, log, make_clip, release, weight_sources  # noqa: E402

from empathic.face_analysis import FaceAnalysisOptions  # noqa: E402
from empathic.faces.detect import DetectorOptions, make_detector  # noqa: E402
from empathic.live.session import LiveOptions, LiveSession  # noqa: E402
from empathic.live.source import LiveSource  # noqa: E402
from empathic.models.face import FaceEmotionModel  # noqa: E402
from empathic.models.runtime import make_runtime  # noqa: E402
from empathic.segments.sliding import SlidingOptions  # noqa: E402

SUSTAINED_SKIP_SHARE = 0.02
GOAL_PPS, GOAL_P95_S, GOAL_VOICE_SLACK_S = 5.0, 0.25, 0.5


def four_faces(clip: compare.Clip, folder: Path) -> Path:
    """Two copies of the clip side by side, scaled back to its size: four people."""
    path = folder / f"four_faces_{clip.width}x{clip.height}_{clip.duration_s:.0f}s.mp4"
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip.path), "-i", str(clip.path), "-filter_complex",
                        f"[0:v][1:v]hstack=inputs=2,scale={clip.width}:{clip.height}[v]", "-map", "[v]", "-map",
                        "0:a", "-c:v", "libx264", "-crf", "20", "-g", "25", "-c:a", "copy", str(path)], check=True)
    return path


def stats_row(stats, extra: dict) -> dict:
    return {**extra, "offered": stats.offered, "processed": stats.processed, "skipped": stats.skipped,
            "latency_p50_s": stats.percentile(50), "latency_p95_s": stats.percentile(95),
            "latency_max_s": max(stats.latencies_s) if stats.latencies_s else None}


def face_sessions(path: Path, model, pps_list: list[float], seconds: float, max_faces: int | None) -> list[dict]:
    rows = []
    for pps in pps_list:
        options = LiveOptions(faces=FaceAnalysisOptions(pps=pps, detection=DetectorOptions(max_faces=max_faces)),
                              voices=None)
        session = LiveSession(options, model, None, make_detector("haar", options.faces.detection))
        result = play(session, path, seconds, video=True)
        faces_per_sample = len(result.face.faces) / max(1, len(result.face.frames))
        rows.append(stats_row(result.summary.face, {"pps": pps, "faces_per_sample": round(faces_per_sample, 2)}))
        log(f"faces at {pps:g} pps: {rows[-1]}")
    return rows


def voice_session(path: Path, model, sliding: SlidingOptions, seconds: float) -> dict:
    session = LiveSession(LiveOptions(faces=None, voices=sliding), None, model)
    result = play(session, path, seconds, video=False)
    row = stats_row(result.summary.voice, {"window_s": sliding.window_s, "hop_s": sliding.hop_s,
                                           "scored": len(result.voice.segments)})
    log(f"voice: {row}")
    return row


def play(session: LiveSession, path: Path, seconds: float, video: bool):
    """One session on the file played at its own rate, stopped after ``seconds``."""
    import threading

    source = LiveSource(str(path), video=video, audio=not video, realtime=True)
    timer = threading.Timer(seconds, source.stop.set)
    timer.start()
    try:
        return session.run(source)
    finally:
        timer.cancel()
        source.close()


def result_faces(args) -> int:
    """People per frame the sessions scored."""
    return args.faces if args.max_faces is None else min(args.faces, args.max_faces)


def sustained(rows: list[dict]) -> float | None:
    kept = [r["pps"] for r in rows if r["offered"] and r["skipped"] <= SUSTAINED_SKIP_SHARE * r["offered"]]
    return max(kept) if kept else None


def seconds_text(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def print_table(result: dict) -> None:
    setup = result["setup"]
    print(f"live sessions on {setup['device']} ({setup['precision']}), {setup['size']} sizes, "
          f"{setup['faces']} faces at {setup['width']}x{setup['height']}, {setup['seconds']:g} s each")
    print(f"{'faces pps':>10} {'offered':>8} {'done':>6} {'skipped':>8} {'p50':>8} {'p95':>8} {'max':>8}")
    for row in result["faces"]:
        print(f"{row['pps']:>10g} {row['offered']:>8} {row['processed']:>6} {row['skipped']:>8} "
              f"{seconds_text(row['latency_p50_s']):>8} {seconds_text(row['latency_p95_s']):>8} "
              f"{seconds_text(row['latency_max_s']):>8}")
    print(f"sustained: {result['sustained_pps'] if result['sustained_pps'] is not None else 'none'} pps "
          f"(at most {SUSTAINED_SKIP_SHARE:.0%} skipped)")
    voice = result.get("voice")
    if voice:
        print(f"voice: {voice['processed']} of {voice['offered']} windows ({voice['window_s']:g} s every "
              f"{voice['hop_s']:g} s, {voice['scored']} with speech), {voice['skipped']} skipped, latency p50 "
              f"{seconds_text(voice['latency_p50_s'])} p95 {seconds_text(voice['latency_p95_s'])}; "
              f"{setup['voice_heads']} of the 55 Voice-Small heads loaded")
    goals = result["goals"]
    print(f"goals: faces >= {GOAL_PPS:g} pps for 4 people with p95 < {GOAL_P95_S * 1000:.0f} ms: "
          f"{goals['faces']}; voice p95 within hop + {GOAL_VOICE_SLACK_S:g} s: {goals['voice']}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each session (default 20)")
    parser.add_argument("--pps-list", default="1,2,5,10", help="face rates to try (default 1,2,5,10)")
    parser.add_argument("--faces", type=int, choices=[2, 4], default=2)
    parser.add_argument("--max-faces", type=int, default=None, help="keep the N largest faces per frame")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--hop", type=float, default=3.0)
    parser.add_argument("--voice-heads", type=int, default=8, help="Voice-Small heads loaded (default 8 of 55)")
    parser.add_argument("--no-voice", action="store_true", help="faces only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/empathic-bench"))
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    sizes = SIZES[args.size]
    cache = build_hub(args.work / f"hub-{args.size}", sizes, args.voice_heads)
    clip = make_clip(args.work, max(args.seconds + 2, 8.0), args.width, args.height)
    path = four_faces(clip, args.work) if args.faces == 4 else clip.path
    runtime = make_runtime(args.device, args.precision)
    face_model = FaceEmotionModel.load("small", weight_sources(cache), runtime)
    face_model.score(face_model.embed(face_model.preprocess([compare.warm_up_inputs(clip)[0]])))
    pps_list = [float(p) for p in args.pps_list.split(",") if p.strip()]
    faces = face_sessions(path, face_model, pps_list, args.seconds, args.max_faces)
    del face_model
    release()
    voice = None
    if not args.no_voice:
        project = compare.ProjectVoice(cache, runtime, args.voice_heads)
        project.warm_up(compare.warm_up_inputs(clip)[1])
        voice = voice_session(clip.path, project.model, SlidingOptions(window_s=args.window, hop_s=args.hop),
                              args.seconds)
    best = sustained(faces)
    at_goal = [r for r in faces if r["pps"] >= GOAL_PPS and r["skipped"] <= SUSTAINED_SKIP_SHARE * r["offered"]
               and (r["latency_p95_s"] or 1e9) < GOAL_P95_S]
    result = {
        "setup": {"device": str(runtime.device), "precision": runtime.precision_name, "size": args.size,
                  "faces": result_faces(args), "width": args.width, "height": args.height, "seconds": args.seconds,
                  "voice_heads": args.voice_heads},
        "faces": faces, "sustained_pps": best, "voice": voice,
        "goals": {"faces": "reached" if at_goal and result_faces(args) == 4 else
                  ("not measured (use --faces 4)" if result_faces(args) != 4 else "not reached"),
                  "voice": "not measured" if voice is None or voice["latency_p95_s"] is None else
                  ("reached" if voice["latency_p95_s"] <= args.hop + GOAL_VOICE_SLACK_S else "not reached")},
    }
    print_table(result)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
