import numpy as np
import pytest

from empathic.faces.crop import crop_box
from empathic.faces.detect import DetectorOptions, HaarDetector, WholeFrameDetector, make_detector
from empathic.faces.track import FaceTracker
from empathic.results import Box
from media_factory import PlacedFace, background, paste


def _frame_with(*faces, width=1280, height=720):
    canvas = background(width, height)
    for face in faces:
        paste(canvas, face)
    return canvas


def test_haar_finds_the_real_face_on_a_720p_frame():
    face = PlacedFace(400, 300)
    detections = HaarDetector(DetectorOptions()).detect(_frame_with(face))
    assert len(detections) == 1
    assert detections[0].box.iou(Box(*face.expected_box())) > 0.8
    assert 0.5 < detections[0].confidence <= 1.0


def test_downscaled_detection_reports_boxes_in_original_pixels():
    face = PlacedFace(900, 150, scale=1.5)
    full = HaarDetector(DetectorOptions(detect_width=0)).detect(_frame_with(face))
    small = HaarDetector(DetectorOptions(detect_width=640)).detect(_frame_with(face))
    assert len(full) == len(small) == 1
    assert small[0].box.iou(full[0].box) > 0.7
    assert small[0].box.iou(Box(*face.expected_box())) > 0.7


def test_size_and_confidence_thresholds_filter():
    frame = _frame_with(PlacedFace(100, 100), PlacedFace(800, 300, scale=0.6))
    assert len(HaarDetector(DetectorOptions()).detect(frame)) == 2
    larger = HaarDetector(DetectorOptions(min_face_size=80)).detect(frame)
    assert len(larger) == 1 and larger[0].box.w >= 80
    assert HaarDetector(DetectorOptions(confidence_threshold=1.01)).detect(frame) == []
    assert len(HaarDetector(DetectorOptions(max_faces=1)).detect(frame)) == 1


def test_no_face_no_detection():
    assert HaarDetector(DetectorOptions()).detect(background(1280, 720)) == []


def test_whole_frame_detector_and_detector_choice(tmp_path):
    frame = np.zeros((360, 640, 3), np.uint8)
    (whole,) = WholeFrameDetector(DetectorOptions()).detect(frame)
    assert (whole.box.x, whole.box.y, whole.box.w, whole.box.h, whole.confidence) == (0, 0, 640, 360, 1.0)
    assert isinstance(make_detector("none"), WholeFrameDetector)
    with pytest.raises(FileNotFoundError, match="YuNet model file not found"):
        make_detector(str(tmp_path / "yunet.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="not a YuNet ONNX model"):
        make_detector(str(bad))
    with pytest.raises(ValueError, match="unknown detector 'mtcnn'"):
        make_detector("mtcnn")


def test_crop_is_a_square_around_the_face_clipped_to_the_frame():
    assert crop_box(Box(100, 100, 50, 100), 1280, 720, 0.0) == (75, 100, 175, 200)
    assert crop_box(Box(100, 100, 100, 100), 1280, 720, 0.2) == (80, 80, 220, 220)
    assert crop_box(Box(0, 0, 100, 100), 150, 150, 0.5) == (0, 0, 150, 150)


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_tracks_follow_overlap_and_do_not_swap():
    tracker = FaceTracker()
    a, b = _unit([1, 0.2, 0]), _unit([0.9, 0.3, 0.1])  # similar-looking faces: overlap decides
    assert tracker.assign(0.0, [Box(0, 0, 100, 100), Box(500, 0, 100, 100)], np.stack([a, b])) == [1, 2]
    # listed in the other order, both moved a little
    assert tracker.assign(1.0, [Box(530, 5, 100, 100), Box(30, 5, 100, 100)], np.stack([b, a])) == [2, 1]


def test_a_face_that_returns_after_a_gap_gets_its_old_id_by_appearance():
    tracker = FaceTracker()
    a, b = _unit([1, 0, 0]), _unit([0, 1, 0])
    assert tracker.assign(0.0, [Box(0, 0, 100, 100)], a[None]) == [1]
    assert tracker.assign(1.0, [Box(600, 0, 100, 100)], b[None]) == [2]  # a stranger elsewhere
    assert tracker.assign(30.0, [Box(900, 400, 100, 100)], _unit([0.98, 0.05, 0])[None]) == [1]
    assert tracker.assign(31.0, [Box(0, 400, 90, 90)], _unit([0, 0, 1])[None]) == [3]  # new person
