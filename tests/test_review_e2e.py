"""The review loop against a REAL Label Studio 1.23.2: `empathic agreement` on a constructed case
whose figures are worked out by hand, the webhook counts in /metrics of a served backend, and the
round trip prediction -> annotation -> `empathic export` -> the analysis' own export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import webvtt

from test_labelstudio_e2e import MODEL_VERSION, backend, label_studio, media  # noqa: F401 (fixtures)

EMPATHIC = str(Path(sys.executable).with_name("empathic"))
CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"
AUDIO_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <Labels name="voice_emotion" toName="audio"><Label value="Positive"/><Label value="Negative"/></Labels>
</View>"""


def _segment(region_id: str, start: float, end: float, label: str) -> dict:
    return {"id": region_id, "from_name": "voice_emotion", "to_name": "audio", "type": "labels",
            "value": {"start": start, "end": end, "channel": 0, "labels": [label]}}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EMPATHIC, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _suggestions(backend_url: str) -> dict[str, float]:
    text = requests.get(f"{backend_url}/metrics", timeout=5).text
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("empathic_suggestions_overall{")}


def _wait_for(backend_url: str, expected: dict[str, float], timeout_s: float = 30.0) -> dict[str, float]:
    deadline = time.time() + timeout_s
    while True:
        seen = _suggestions(backend_url)
        if all(seen.get(k) == v for k, v in expected.items()) or time.time() > deadline:
            return seen
        time.sleep(0.3)


def test_agreement_report_and_webhook_counts_on_a_hand_worked_case(label_studio, backend, tmp_path):
    """10 s of audio in bins of 1 s. The model suggests Positive 0-6 s and Negative 8-10 s; the
    annotator moves Positive to 2-8 s and deletes Negative.
    Positive: model on bins 0-5, annotator on bins 2-7 -> TP 4, FP 2, FN 2, TN 2;
      F1 = 8 / 12 = 2/3; kappa = (0.6 - 0.52) / 0.48 = 1/6;
      alpha (2 raters, 10 units): Do = 8/20, De = 2*8*12 / (20*19) -> 1 - 0.4*380/192 = 40/192.
    Negative: model on bins 8-9, annotator never -> TP 0, FP 2, TN 8; precision 0, recall
      undefined, F1 0; kappa = (0.8 - 0.8) / 0.2 = 0."""
    client = label_studio.client()
    project = client.create_project("agreement by hand", AUDIO_CONFIG)
    (task,) = client.import_tasks(project, [{"audio": "/data/upload/none.wav"}])
    client.connect_ml_backend(project, backend["url"], "empathic")  # Label Studio adds the webhook
    suggested = [_segment("p1", 0.0, 6.0, "Positive"), _segment("p2", 8.0, 10.0, "Negative")]
    prediction = client.create_prediction(task, suggested, MODEL_VERSION, score=0.4)
    before = _suggestions(backend["url"])
    annotation = client.post(f"/api/tasks/{task}/annotations/",
                             {"result": [_segment("p1", 2.0, 8.0, "Positive")], "parent_prediction": prediction["id"]})

    # the webhook: one suggestion edited (moved), one deleted
    seen = _wait_for(backend["url"], {"edited": before.get("edited", 0) + 1, "deleted": before.get("deleted", 0) + 1})
    assert seen["edited"] == before.get("edited", 0) + 1 and seen["moved"] == before.get("moved", 0) + 1
    assert seen["deleted"] == before.get("deleted", 0) + 1

    out = tmp_path / "report"
    done = _cli("agreement", "--url", label_studio.url, "--api-key", label_studio.token, "--project", str(project),
                "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert "1 tasks, 1 annotations: 2 suggestions, 0 kept, 1 edited, 1 deleted, 0 regions added" in done.stdout
    report = json.loads((out / "agreement.json").read_text())
    assert report["model_version"] == MODEL_VERSION and report["tasks_compared"] == 1
    (voice,) = report["controls"]
    assert voice["control"] == "voice_emotion" and voice["units"] == 10
    labels = {row["label"]: row for row in voice["labels"]}
    positive, negative = labels["Positive"], labels["Negative"]
    assert [positive[k] for k in ("true_positive", "false_positive", "false_negative", "true_negative")] == [4, 2, 2, 2]
    assert positive["f1"] == pytest.approx(2 / 3, abs=1e-6) and positive["kappa"] == pytest.approx(1 / 6, abs=1e-6)
    assert positive["alpha"] == pytest.approx(40 / 192, abs=1e-6)
    assert [negative[k] for k in ("true_positive", "false_positive", "true_negative")] == [0, 2, 8]
    assert negative["precision"] == 0.0 and negative["recall"] is None and negative["f1"] == 0.0
    assert negative["kappa"] == pytest.approx(0.0, abs=1e-9)
    assert report["suggestions"]["per_label"] == {"Positive": {"edited": 1}, "Negative": {"deleted": 1}}
    page = (out / "agreement.html").read_text()
    assert page.count("<img alt='voice_emotion' src='data:image/png;base64,") == 2 and "http" not in page

    # the annotator changes their mind and accepts both suggestions: the counts follow
    client.patch(f"/api/annotations/{annotation['id']}", {"result": suggested})
    seen = _wait_for(backend["url"], {"kept": before.get("kept", 0) + 2, "edited": before.get("edited", 0)})
    assert seen["kept"] == before.get("kept", 0) + 2 and seen["edited"] == before.get("edited", 0)
    assert seen["deleted"] == before.get("deleted", 0)
    # a deleted annotation takes its counts with it
    client.delete(f"/api/annotations/{annotation['id']}")
    seen = _wait_for(backend["url"], {"kept": before.get("kept", 0)})
    assert seen["kept"] == before.get("kept", 0)


def test_agreement_names_a_project_without_anything_to_compare(label_studio, tmp_path):
    client = label_studio.client()
    project = client.create_project("nothing to compare", AUDIO_CONFIG)
    client.import_tasks(project, [{"audio": "/data/upload/none.wav"}])
    done = _cli("agreement", "--url", label_studio.url, "--api-key", label_studio.token, "--project", str(project),
                "-o", str(tmp_path), "-q")
    assert done.returncode == 1
    assert f"project {project} has no task with both an annotation and a prediction" in done.stderr


@pytest.fixture(scope="module")
def round_trip(label_studio, media, asr_hub_cache, tmp_path_factory):
    """A prediction made the backend's way, stored in Label Studio, then saved as it is as the
    annotation of the same task; the analyses it came from, exported by our own writers."""
    from empathic.exports.coco import WriteCOCO
    from empathic.exports.webvtt import WriteVTT
    from empathic.labelstudio.backend import EmpathicBackend
    from empathic.labelstudio.service import AnalysisService
    from empathic.labelstudio.settings import BackendSettings

    client = label_studio.client()
    config = (CONFIGS / "video_face_voice.xml").read_text()
    project = client.create_project("round trip", config)
    (task_id,) = client.upload_file(project, media["video"])
    folder = tmp_path_factory.mktemp("round-trip")
    settings = BackendSettings.from_env().model_copy(update={
        "label_studio_url": label_studio.url, "label_studio_api_key": label_studio.token,
        "media_cache_dir": str(folder / "media"), "face_pps": 2.0, "model_version": MODEL_VERSION,
        "device": "cpu", "redis_url": None})
    backend = EmpathicBackend(str(project), config, AnalysisService(settings))
    prediction = backend.predict_now(client.get_task(task_id))
    stored = client.create_prediction(task_id, prediction["result"], MODEL_VERSION, prediction["score"])
    annotation = client.post(f"/api/tasks/{task_id}/annotations/",
                             {"result": stored["result"], "parent_prediction": stored["id"]})
    analyses = backend._analyses(client.get_task(task_id), cached_only=True)
    assert analyses["face"] is not None and analyses["voice"] is not None
    out = folder / "export"
    done = _cli("export", "--url", label_studio.url, "--api-key", label_studio.token, "--project", str(project),
                "-f", "coco", "-f", "webvtt", "-f", "json", "-f", "eaf", "-o", str(out), "-q",
                env={"MEDIA_CACHE_DIR": str(folder / "export-media")})
    assert done.returncode == 0, done.stderr
    stem = out / f"task-{task_id}_annotation-{annotation['id']}"
    return {"project": project, "face": analyses["face"], "voice": analyses["voice"], "out": out, "stem": stem, "stdout": done.stdout,
            "coco": json.loads(WriteCOCO().render(analyses["face"])), "vtt": WriteVTT().render(analyses["voice"]),
            "prediction": prediction}


def test_exported_boxes_equal_the_analysis_boxes_on_every_sampled_frame(round_trip):
    assert "exported 1 annotations of 1 tasks into 4 files" in round_trip["stdout"]
    original, exported = round_trip["coco"], json.loads(Path(f"{round_trip['stem']}.coco.json").read_text())
    assert original["annotations"], "the analysis found no face: the round trip would prove nothing"
    by_frame_and_track = {(a["frame_number"], a["track_id"]): a for a in exported["annotations"]}
    width = original["images"][0]["width"]
    # the prediction rounds percent to 4 decimals (1e-6 of the width) and both sides round to 0.01 px
    tolerance = 0.01 + width * 1e-6 + 1e-9
    largest = 0.0
    for face in original["annotations"]:
        twin = by_frame_and_track.get((face["frame_number"], face["track_id"]))
        assert twin is not None, f"frame {face['frame_number']} track {face['track_id']}: no exported box"
        assert np.allclose(twin["bbox"], face["bbox"], atol=tolerance), (twin["bbox"], face["bbox"])
        largest = max(largest, float(np.abs(np.subtract(twin["bbox"], face["bbox"])).max()))
        assert twin["timestamp"] == pytest.approx(face["timestamp"], abs=1e-6)
        assert twin["attributes"]["keyframe"] is True
    print(f"round trip: {len(original['annotations'])} sampled boxes, largest difference {largest:.4f} px")
    assert {a["track_id"] for a in exported["annotations"]} == {a["track_id"] for a in original["annotations"]}
    # between the samples there are boxes on every frame (Label Studio's interpolation), one image each
    frames = sorted({a["frame_number"] for a in exported["annotations"]})
    assert len(exported["images"]) == len(frames) > len({a["frame_number"] for a in original["annotations"]})
    assert exported["images"][0]["width"] == width and exported["info"]["frame_rate"] == 25.0


def test_exported_cues_equal_the_analysis_cues(round_trip):
    original = webvtt.from_string(round_trip["vtt"])
    exported = webvtt.read(f"{round_trip['stem']}.vtt")
    assert len(original) > 0
    assert [(c.start, c.end) for c in exported] == [(c.start, c.end) for c in original]
    predicted = [r for r in round_trip["prediction"]["result"] if r["from_name"] == "voice_emotion"]
    for cue, region in zip(exported, predicted):
        assert "LABELS: " + ", ".join(region["value"]["labels"]) in cue.text
        assert "arousal: " in cue.text  # the per-region Number came along


def test_exported_json_and_elan_hold_every_region(round_trip):
    document = json.loads(Path(f"{round_trip['stem']}.json").read_text())
    prediction = round_trip["prediction"]["result"]
    assert len(document["tracks"]) == len({r["id"] for r in prediction if r["type"] == "videorectangle"})
    assert len(document["segments"]) == len([r for r in prediction if r["from_name"] == "voice_emotion"])
    assert len(document["timeline"]) == len([r for r in prediction if r["type"] == "timelinelabels"])
    for track in document["tracks"]:
        assert track["labels"]["face_emotion"] and track["keyframes"][0]["enabled"] is True
    from pympi.Elan import Eaf

    eaf = Eaf(f"{round_trip['stem']}.eaf")
    tiers = eaf.get_tier_names()
    assert "voice_emotion" in tiers and any(t.startswith("face ") for t in tiers)
    spans = sorted(eaf.get_annotation_data_for_tier("voice_emotion"))
    assert spans[0][0] == round(document["segments"][0]["start_time"] * 1000)
    index = json.loads((round_trip["out"] / "index.json").read_text())
    assert index["tasks"][0]["files"] and index["tasks"][0]["annotations"][0]["annotator"].endswith(", 1")


def test_a_suggestion_saved_unchanged_agrees_fully_on_video(round_trip, label_studio, tmp_path):
    """The round trip's annotation is its prediction: every track, segment and timeline range is
    kept, and every label agrees on every unit (F1 1, kappa 1 where it is defined)."""
    done = _cli("agreement", "--url", label_studio.url, "--api-key", label_studio.token, "--project",
                str(round_trip["project"]), "-o", str(tmp_path), "-q")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "agreement.json").read_text())
    suggestions = report["suggestions"]
    regions = {(r["id"], r["type"]) for r in round_trip["prediction"]["result"]
               if r["type"] in ("videorectangle", "labels", "timelinelabels")}
    assert suggestions["kept"] == suggestions["suggested"] == len(regions)
    assert suggestions["edited"] == suggestions["deleted"] == suggestions["added"] == 0
    kinds = {c["control"]: c["kind"] for c in report["controls"]}
    assert kinds["face_emotion"] == "track" and kinds["voice_emotion"] == "span"
    for control in report["controls"]:
        for label in control["labels"]:
            assert label["false_positive"] == label["false_negative"] == 0, (control["control"], label)
            assert label["f1"] == 1.0 and label["kappa"] in (1.0, None)
