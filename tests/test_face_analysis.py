"""End to end on generated media with the tiny replicas: boxes, tracks, COCO, reference scores."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from empathic.exports.coco import to_coco
from empathic.face_analysis import FaceAnalysisOptions, analyze_faces
from empathic.registry import FACE_MODELS
from empathic.results import Box
from media_factory import background, moving_face_video
from reference import reference_face_scores


@pytest.fixture(scope="module")
def one_face(media_dir):
    return moving_face_video(media_dir / "one_face.mp4", seconds=3.0, faces=1)


@pytest.fixture(scope="module")
def two_faces(media_dir):
    return moving_face_video(media_dir / "two_faces.mp4", seconds=3.0, faces=2)


def test_boxes_cover_the_moving_face_and_one_track_follows_it(one_face, face_model_small):
    path, placements = one_face
    progress = []
    analysis = analyze_faces(path, face_model_small, FaceAnalysisOptions(pps=2.0),
                             hook=lambda step, done, total: progress.append((step, done, total)))
    assert [f.time_s for f in analysis.frames] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert [f.frame_index for f in analysis.frames] == [0, 15, 30, 45, 60, 75]
    assert len(analysis.faces) == 6
    for face in analysis.faces:
        expected = Box(*placements[face.frame_index][0].expected_box())
        assert face.box.iou(expected) > 0.75
    assert analysis.track_ids == (1,)
    assert progress[0] == ("frames", 0, 6) and progress[-1] == ("frames", 6, 6)
    face = analysis.faces[0]
    assert len(face.emotions) == 40 and [d for d, _ in face.dimensions] == [
        "valence", "arousal", "dominance", "emotional_vulnerability"]
    assert sum(e.share for e in face.emotions) == pytest.approx(1.0)


def test_two_people_keep_their_own_track(two_faces, face_model_small):
    path, placements = two_faces
    analysis = analyze_faces(path, face_model_small, FaceAnalysisOptions(pps=2.0))
    assert len(analysis.faces) == 12 and len(analysis.track_ids) == 2
    by_track: dict[int, set[int]] = {}
    for face in analysis.faces:
        # which of the two placed faces does this box cover?
        person = max(range(2), key=lambda p: face.box.iou(Box(*placements[face.frame_index][p].expected_box())))
        assert face.box.iou(Box(*placements[face.frame_index][person].expected_box())) > 0.7
        by_track.setdefault(face.track_id, set()).add(person)
    assert sorted(map(sorted, by_track.values())) == [[0], [1]]


def test_a_video_without_faces_gives_an_empty_valid_result(media_dir, face_model_small):
    from media_factory import write_video

    path = write_video(media_dir / "no_face.mp4", [background(640, 360, seed=s) for s in range(20)])
    analysis = analyze_faces(path, face_model_small, FaceAnalysisOptions(pps=5.0))
    assert len(analysis.frames) == 4 and analysis.faces == ()
    coco = to_coco(analysis)
    assert coco["annotations"] == [] and len(coco["images"]) == 4


def test_coco_export_loads_in_pycocotools(two_faces, face_model_small, tmp_path):
    import json

    from pycocotools.coco import COCO

    path, _ = two_faces
    analysis = analyze_faces(path, face_model_small, FaceAnalysisOptions(pps=1.0))
    document = to_coco(analysis, top_k=40)
    out = tmp_path / "faces.json"
    out.write_text(json.dumps(document))
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds(catIds=[1])) == 6
    annotation = coco.loadAnns(coco.getAnnIds())[0]
    image = coco.loadImgs(annotation["image_id"])[0]
    assert (image["width"], image["height"]) == (1280, 720)
    assert image["frame_number"] == annotation["frame_number"] and image["timestamp"] == annotation["timestamp"]
    x, y, w, h = annotation["bbox"]
    assert annotation["area"] == pytest.approx(w * h, abs=0.01) and annotation["iscrowd"] == 0
    emotions = annotation["attributes"]["emotions"]
    assert len(emotions) == 40
    assert sorted(e["rank"] for e in emotions.values()) == list(range(1, 41))
    assert sum(e["score"] for e in emotions.values()) == pytest.approx(1.0, abs=1e-4)
    for e in emotions.values():
        assert e["intensity"] < e["raw"] + 1e-6 or e["raw"] < 0  # neutral means here are >= 0
    assert set(annotation["attributes"]["dimensions"]) == {"valence", "arousal", "dominance",
                                                          "emotional_vulnerability"}
    info = annotation["attributes"]["model_info"]
    assert info["repo"] == "laion/Empathic-Insight-Face-Small" and info["model_size"] == "small"
    assert len(info["revision"]) == 40  # the resolved commit
    top5 = to_coco(analysis, top_k=5)["annotations"][0]["attributes"]["emotions"]
    assert sorted(e["rank"] for e in top5.values()) == [1, 2, 3, 4, 5]


def test_same_settings_give_byte_identical_output(one_face, face_model_small):
    import json

    path, _ = one_face
    runs = [json.dumps(to_coco(analyze_faces(path, face_model_small, FaceAnalysisOptions(pps=1.0))))
            for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("size", ["small", "large"])
def test_whole_frame_scores_equal_laions_reference(size, tmp_path, hub_cache, request):
    model = request.getfixturevalue(f"face_model_{size}")
    spec = FACE_MODELS[size]
    rgb = cv2.resize(astronaut(), (640, 400))  # not square: the processor squashes it, as LAION's does
    path = tmp_path / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    analysis = analyze_faces(path, model, FaceAnalysisOptions(detector="none"))
    (face,) = analysis.faces
    assert (face.box.x, face.box.y, face.box.w, face.box.h) == (0, 0, 640, 400)

    heads_dir = _snapshot(hub_cache, spec.repo.repo_id)
    reference = reference_face_scores(rgb, _snapshot(hub_cache, spec.backbone.repo_id), heads_dir,
                                      spec.neutral.file_name, nested=spec.neutral.format == "nested")
    by_id = {e.emotion_id: e for e in face.emotions}
    from empathic.taxonomy import EMOTIONS

    for emotion in EMOTIONS:
        expected = reference[f"model_{emotion.face_key}_best"]
        got = by_id[emotion.id]
        assert got.raw == pytest.approx(expected["raw"], abs=1e-5)
        assert got.intensity == pytest.approx(expected["ms"], abs=1e-5)
        assert got.share == pytest.approx(expected["softmax"], abs=1e-5)
    for dimension, value in face.dimensions:
        assert value == pytest.approx(reference[f"model_{dimension}_best"]["raw"], abs=1e-5)
        assert reference[f"model_{dimension}_best"]["softmax"] is None
    assert len(face.dimensions) == (4 if size == "small" else 0)


def _snapshot(cache: Path, repo_id: str) -> Path:
    (snapshot,) = (cache / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir()
    return snapshot


def test_bgr_is_never_fed_to_the_model(tmp_path, face_model_small):
    """A picture and its channel-swapped copy must not score the same (guards against BGR input)."""
    rgb = np.ascontiguousarray(astronaut())
    swapped = np.ascontiguousarray(rgb[:, :, ::-1])
    a = face_model_small.embed(face_model_small.preprocess([rgb]))
    b = face_model_small.embed(face_model_small.preprocess([swapped]))
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (face,) = analyze_faces(path, face_model_small, FaceAnalysisOptions(detector="none")).faces
    raw_from_file = np.array([e.raw for e in sorted(face.emotions, key=lambda e: e.emotion_id)])
    direct = face_model_small.score(a)[0][0]
    raw_direct = np.array([e.raw for e in sorted(direct, key=lambda e: e.emotion_id)])
    np.testing.assert_allclose(raw_from_file, raw_direct, atol=1e-6)
    assert not np.allclose(a, b)


def test_prefetching_changes_speed_not_results(two_faces, face_model_small):
    import json

    path, _ = two_faces
    results = [json.dumps(to_coco(analyze_faces(path, face_model_small,
                                                FaceAnalysisOptions(pps=2.0, prefetch_frames=depth))))
               for depth in (0, 1, 8)]
    assert results[0] == results[1] == results[2]
