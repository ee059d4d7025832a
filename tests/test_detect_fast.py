"""The local Haar search (the default) against OpenCV's exhaustive scan, on real detections."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from empathic.faces import haar_local
from empathic.faces.detect import HAAR_CASCADE, DetectorOptions, HaarDetector
from empathic.results import Box
from media_factory import FACE_SIZE_BUCKETS, faces_scene

CASCADE = Path(cv2.data.haarcascades) / HAAR_CASCADE
SCENES = range(8)  # the first frames of bench/bench_detect.py: one face per size bucket, 30 to 300 px
EDGE_PX = 3  # a box's edges may lie this far from the exhaustive scan's


@pytest.fixture(scope="module")
def cascade():
    return cv2.CascadeClassifier(str(CASCADE))


@pytest.fixture(scope="module")
def searches():
    return (HaarDetector(DetectorOptions(haar_search="exhaustive")), HaarDetector(DetectorOptions()))


def _found(detections, truth) -> list[bool]:
    return [any(d.box.iou(Box(*face)) >= 0.5 for d in detections) for face in truth]


def _edge_offset(a: Box, b: Box) -> float:
    return max(abs(a.x - b.x), abs(a.y - b.y), abs(a.x + a.w - b.x - b.w), abs(a.y + a.h - b.y - b.h))


def test_the_scenes_hold_a_face_of_every_size():
    sides = [face[2] for seed in SCENES for face in faces_scene(seed).faces]
    for low, high in FACE_SIZE_BUCKETS:
        assert sum(low <= side < high for side in sides) >= len(SCENES) - 1


@pytest.mark.parametrize("seed", SCENES)
def test_local_search_finds_the_faces_and_boxes_of_the_exhaustive_scan(searches, seed):
    exhaustive, local = searches
    scene = faces_scene(seed)
    full, fast = exhaustive.detect(scene.rgb), local.detect(scene.rgb)
    assert _found(fast, scene.faces) == _found(full, scene.faces)
    assert sum(_found(full, scene.faces)) >= 4  # the scan finds faces here: the comparison means something
    assert len(fast) == len(full)
    for detection in full:
        twin = max(fast, key=lambda d: d.box.iou(detection.box))
        assert _edge_offset(twin.box, detection.box) <= EDGE_PX, (detection, twin)
        assert twin.confidence == pytest.approx(detection.confidence, abs=1e-9)


@pytest.mark.parametrize("options", [dict(min_face_size=80), dict(detect_width=640), dict(detect_width=0)])
def test_local_search_follows_the_detector_options(options):
    exhaustive = HaarDetector(DetectorOptions(haar_search="exhaustive", **options))
    local = HaarDetector(DetectorOptions(**options))
    for seed in (0, 3):
        scene = faces_scene(seed)
        full, fast = exhaustive.detect(scene.rgb), local.detect(scene.rgb)
        assert _found(fast, scene.faces) == _found(full, scene.faces)
        assert [round(d.box.w) for d in fast] == pytest.approx([round(d.box.w) for d in full], abs=EDGE_PX)


def test_local_search_is_deterministic(searches):
    _, local = searches
    frame = faces_scene(5).rgb
    first = local.detect(frame)
    assert local.detect(frame) == first
    assert HaarDetector(DetectorOptions()).detect(frame.copy()) == first


def test_a_frame_without_faces_gives_nothing():
    rng = np.random.default_rng(0)
    noise = cv2.resize(rng.integers(40, 220, (180, 320, 3), dtype=np.uint8), (1280, 720))
    assert HaarDetector(DetectorOptions()).detect(noise) == []


def test_grouping_is_opencvs(cascade):
    """The windows of the whole frame, grouped here, give OpenCV's own boxes and weights."""
    for seed in (0, 1):
        gray = cv2.cvtColor(faces_scene(seed).rgb, cv2.COLOR_RGB2GRAY)
        boxes, _, weights = cascade.detectMultiScale3(gray, 1.1, 5, minSize=(30, 30), outputRejectLevels=True)
        windows, _, window_weights = cascade.detectMultiScale3(gray, 1.1, 0, minSize=(30, 30),
                                                               outputRejectLevels=True)
        grouped, grouped_weights = haar_local.group_windows(windows, window_weights, 5)
        expected = sorted(zip(map(tuple, np.asarray(boxes).reshape(-1, 4).tolist()), np.ravel(weights).tolist()))
        assert sorted(zip(map(tuple, grouped.tolist()), grouped_weights.tolist())) == expected


def test_windows_searched_in_a_region_are_the_exhaustive_scans(cascade):
    """Same shrunk pixels, same grid: inside a region the full cascade accepts exactly the windows
    the exhaustive scan accepts there, at scales where it visits every pixel and every second."""
    scene = faces_scene(2)
    gray = cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2GRAY)
    levels = haar_local.scan_levels(1.1, 24, 30, min(gray.shape))
    compared = 0
    for x, y, w, h in scene.faces:
        region = (x - 0.8 * w, y - 0.8 * h, x + 1.8 * w, y + 1.8 * h)
        for level in levels:
            factor, side = level
            if not 0.7 * w <= side <= 1.4 * w:
                continue
            found, _ = haar_local.accepted_windows(haar_local.shrunk_frame(gray, factor), cascade, level, [region])
            full, _, _ = cascade.detectMultiScale3(gray, 1.1, 0, minSize=(side, side), maxSize=(side, side),
                                                   outputRejectLevels=True)

            def inside(rects):
                margin = 2 * factor  # the region is cut on the scan's grid, a pixel or two wider
                return {tuple(r) for r in np.asarray(rects).reshape(-1, 4).tolist()
                        if r[0] >= region[0] + margin and r[1] >= region[1] + margin
                        and r[0] + r[2] <= region[2] - margin and r[1] + r[3] <= region[3] - margin}

            assert inside(found) == inside(full)
            compared += len(inside(full))
    assert compared > 100


def test_search_choice_is_checked():
    with pytest.raises(ValueError, match="haar_search must be one of local, exhaustive"):
        DetectorOptions(haar_search="fast")
