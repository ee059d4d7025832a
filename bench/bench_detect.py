"""Haar face detection on 720p frames: the local search (the default) against the exhaustive scan.

Usage: python bench/bench_detect.py [FRAMES] [FIRST_SEED]   (default 200 frames, seeds 0..199)

Each frame (tests/media_factory.faces_scene) holds one astronaut face from each size bucket, 30-40,
40-60, 60-100, 100-200 and 200-300 px, turned, blurred and lit differently, at random places on
textured noise beside a cat and a cup of coffee, with its true box known. Both searches run at the
default --detect-width 1280 (720p frames are not scaled) and --min-face-size 30 in the same process,
frame by frame, in turns, so that the machine's load falls on both alike; compare the ratio, not the
milliseconds. OpenCV uses as many threads as it finds cores (OPENCV_FOR_THREADS_NUM=1: one).

Prints, per size bucket, the recall (a true box matched by a detection with IoU >= 0.5) of each
search, then false positives per frame (detections matching no true box), milliseconds per frame
and their ratio, and how far the local search's boxes lie from the exhaustive scan's; for scale, how
far the exhaustive scan's own boxes move when the frame is shifted by (2, 1) px. The last line is the
same as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ["HF_HUB_OFFLINE"] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from empathic.faces.detect import DetectorOptions, HaarDetector  # noqa: E402
from empathic.results import Box  # noqa: E402
from media_factory import FACE_SIZE_BUCKETS, faces_scene  # noqa: E402

IOU_MATCH = 0.5


def bucket_of(side: float) -> str:
    return next(f"{low}-{high}" for low, high in FACE_SIZE_BUCKETS if low <= side < high)


def match(truth: list[Box], found: list[Box]) -> tuple[list[bool], int]:
    """Each true box matched to the unused detection it overlaps most (IoU >= 0.5): (found or not
    per true box, detections left over = false positives)."""
    used: set[int] = set()
    hits = []
    for true in truth:
        overlaps = [(true.iou(box), i) for i, box in enumerate(found) if i not in used]
        best, index = max(overlaps, default=(0.0, -1))
        hits.append(best >= IOU_MATCH)
        if best >= IOU_MATCH:
            used.add(index)
    return hits, len(found) - len(used)


def box_offsets(reference: list[Box], other: list[Box]) -> tuple[list[float], list[float], int]:
    """For each reference box with a counterpart (IoU >= 0.5): the largest difference of its edges
    in px and as a share of its side; and how many have none."""
    pixels, shares, missing = [], [], 0
    for box in reference:
        twin = max(other, key=box.iou, default=None)
        if twin is None or box.iou(twin) < IOU_MATCH:
            missing += 1
            continue
        worst = max(abs(box.x - twin.x), abs(box.y - twin.y), abs(box.x + box.w - twin.x - twin.w),
                    abs(box.y + box.h - twin.y - twin.h))
        pixels.append(worst)
        shares.append(worst / box.w)
    return pixels, shares, missing


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    scenes = [faces_scene(seed) for seed in range(first, first + count)]
    searches = {"exhaustive": HaarDetector(DetectorOptions(haar_search="exhaustive")),
                "local": HaarDetector(DetectorOptions(haar_search="local"))}
    for detector in searches.values():
        detector.detect(scenes[0].rgb)  # first-call set-up out of the timing
    seconds = dict.fromkeys(searches, 0.0)
    found: dict[str, list[list[Box]]] = {name: [] for name in searches}
    for i, scene in enumerate(scenes):
        for name in (list(searches) if i % 2 == 0 else list(searches)[::-1]):
            start = time.perf_counter()
            detections = searches[name].detect(scene.rgb)
            seconds[name] += time.perf_counter() - start
            found[name].append([d.box for d in detections])
    shifted = []
    for scene in scenes:  # the exhaustive scan with its grid moved: Haar's own box jitter
        moved = np.ascontiguousarray(scene.rgb[1:, 2:])
        shifted.append([Box(b.x + 2, b.y + 1, b.w, b.h) for b in
                        (d.box for d in searches["exhaustive"].detect(moved))])

    report: dict = {"frames": count, "size": "1280x720",
                    "opencv_threads": cv2.getNumThreads(), "buckets": {}}
    hits = {name: {} for name in searches}
    false_positives = dict.fromkeys(searches, 0)
    for name in searches:
        for scene, boxes in zip(scenes, found[name]):
            truth = [Box(*f) for f in scene.faces]
            matched, extra = match(truth, boxes)
            false_positives[name] += extra
            for true, hit in zip(truth, matched):
                hits[name].setdefault(bucket_of(true.w), []).append(hit)
    for low, high in FACE_SIZE_BUCKETS:
        key = f"{low}-{high}"
        report["buckets"][key] = {name: round(float(np.mean(hits[name][key])), 4) for name in searches}
        report["buckets"][key]["faces"] = len(hits["exhaustive"][key])
    for name in searches:
        report[f"{name}_false_positives_per_frame"] = round(false_positives[name] / count, 3)
        report[f"{name}_ms_per_frame"] = round(1000 * seconds[name] / count, 1)
    report["time_ratio_local_to_exhaustive"] = round(seconds["local"] / seconds["exhaustive"], 3)
    for label, other in (("local", found["local"]), ("shifted_exhaustive", shifted)):
        pixels, shares, missing = [], [], 0
        for reference, boxes in zip(found["exhaustive"], other):
            p, s, m = box_offsets(reference, boxes)
            pixels += p
            shares += s
            missing += m
        report[f"{label}_box_offset_px_median_p90_max"] = [round(float(np.percentile(pixels, q)), 1)
                                                          for q in (50, 90, 100)]
        report[f"{label}_box_offset_share_p90_max"] = [round(float(np.percentile(shares, q)), 3) for q in (90, 100)]
        report[f"exhaustive_boxes_without_{label}_counterpart"] = missing

    print(f"{'face side px':>12} {'faces':>6} {'recall exhaustive':>18} {'recall local':>13}")
    for key, row in report["buckets"].items():
        print(f"{key:>12} {row['faces']:>6} {row['exhaustive']:>18.3f} {row['local']:>13.3f}")
    print(f"false positives per frame: exhaustive {report['exhaustive_false_positives_per_frame']}, "
          f"local {report['local_false_positives_per_frame']}")
    print(f"ms per frame: exhaustive {report['exhaustive_ms_per_frame']}, local {report['local_ms_per_frame']} "
          f"(ratio {report['time_ratio_local_to_exhaustive']}, OpenCV threads {report['opencv_threads']})")
    print("box edges vs the exhaustive scan, px median/p90/max: local "
          f"{report['local_box_offset_px_median_p90_max']}, exhaustive shifted by (2, 1) px "
          f"{report['shifted_exhaustive_box_offset_px_median_p90_max']}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
