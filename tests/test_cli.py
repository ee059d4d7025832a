"""The ``empathic`` command as a user runs it: a real process, real files, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from media_factory import background, moving_face_video, write_video

EMPATHIC = Path(sys.executable).with_name("empathic")


def run(*args, env=None, check=False):
    result = subprocess.run([str(EMPATHIC), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@pytest.fixture(scope="module")
def clip(media_dir):
    return moving_face_video(media_dir / "cli_clip.mp4", seconds=2.0, faces=1)[0]


def test_annotate_prints_coco_with_40_emotions_and_4_dimensions(clip, hub_cache):
    result = run("annotate", clip, "--pps", "1", "--top-k", "40", "--device", "cpu", check=True)
    document = json.loads(result.stdout)
    assert len(document["images"]) == 2 and len(document["annotations"]) == 2
    annotation = document["annotations"][0]
    assert len(annotation["attributes"]["emotions"]) == 40
    assert len(annotation["attributes"]["dimensions"]) == 4
    assert document["info"]["parameters"]["pps"] == 1.0
    assert "frame" in result.stderr  # the progress bar goes to stderr, never into the document


def test_large_model_and_output_file(clip, hub_cache, tmp_path):
    out = tmp_path / "sub" / "clip.coco.json"
    result = run("annotate", clip, "--model-size", "large", "-o", out, "-q", check=True)
    assert result.stdout == "" and result.stderr == ""
    document = json.loads(out.read_text())
    annotation = document["annotations"][0]
    assert len(annotation["attributes"]["emotions"]) == 5 and annotation["attributes"]["dimensions"] == {}
    assert annotation["attributes"]["model_info"]["repo"] == "laion/Empathic-Insight-Face-Large"


def test_no_face_is_an_empty_valid_document_and_exit_0(media_dir, hub_cache):
    path = write_video(media_dir / "cli_empty.mp4", [background(320, 240, seed=s) for s in range(10)])
    result = run("annotate", path, "-q")
    assert result.returncode == 0
    assert json.loads(result.stdout)["annotations"] == []
    assert "no face found" in result.stderr


def test_face_search_choice_is_recorded_and_gives_the_same_boxes(clip, hub_cache):
    documents = {search: json.loads(run("annotate", clip, "--pps", "1", "-q", "--haar-search", search,
                                        check=True).stdout)
                 for search in ("local", "exhaustive")}
    for search, document in documents.items():
        assert document["info"]["parameters"]["haar_search"] == search
    boxes = {search: [a["bbox"] for a in d["annotations"]] for search, d in documents.items()}
    assert len(boxes["local"]) == len(boxes["exhaustive"]) == 2
    assert all(abs(a - b) <= 3 for local, full in zip(*boxes.values()) for a, b in zip(local, full))
    usage = run("annotate", clip, "--haar-search", "fast")
    assert usage.returncode == 2 and "invalid choice: 'fast'" in usage.stderr


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("empathic: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_inputs_give_one_line_errors(tmp_path, clip, hub_cache):
    notes = tmp_path / "notes.mp4"
    notes.write_text("hello")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(clip.read_bytes()[:2000])
    _assert_one_line_error(run("annotate", tmp_path / "nope.mp4"), "nope.mp4", "no such file")
    _assert_one_line_error(run("annotate", notes), "notes.mp4", "not a readable media file")
    _assert_one_line_error(run("annotate", corrupt, "-q"), "corrupt.mp4")
    _assert_one_line_error(run("annotate", clip, "--detector", "yolo"), "unknown detector")
    _assert_one_line_error(run("annotate", clip, "--device", "cuda"), "no CUDA GPU")
    usage = run("annotate", clip, "--pps", "0")
    assert usage.returncode == 2 and "must be > 0" in usage.stderr


def test_missing_weights_name_the_repos_and_the_fetch_command(clip, tmp_path):
    result = run("annotate", clip, env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    _assert_one_line_error(result, "laion/Empathic-Insight-Face-Small", "google/siglip2-so400m-patch16-384",
                           "HF_HUB_OFFLINE", "empathic models download --face small")


def test_every_missing_model_is_named_at_once_before_any_decoding(two_voice_video, hub_cache, tmp_path):
    """Face heads and backbone, voice heads and encoder, the ASR model and the diarization pipeline:
    one message, one command, before a single frame or sample is decoded (no progress bar started)."""
    out = tmp_path / "out"
    result = run("annotate", two_voice_video, "--face", "--voice", "--transcribe", "--segmentation", "diarization",
                 "--voice-encoder", "bud-e-whisper", "-o", out, env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    _assert_one_line_error(result, "laion/Empathic-Insight-Face-Small", "google/siglip2-so400m-patch16-384",
                           "laion/Empathic-Insight-Voice-Small", "laion/BUD-E-Whisper", "openai/whisper-small",
                           "pyannote/speaker-diarization-community-1", "accept the conditions",
                           "`empathic models download --face small --voice small --voice-encoder bud-e-whisper "
                           "--asr --diarization`")
    assert "frame" not in result.stderr and "segment" not in result.stderr.replace("--segmentation", "")
    # With the face models present (the test cache), only what is still missing is named.
    result = run("annotate", two_voice_video, "--face", "--voice", "--transcribe", "-o", out,
                 "--asr-model", "openai/whisper-absent@v2")
    _assert_one_line_error(result, "openai/whisper-absent (revision v2", "--asr openai/whisper-absent@v2`")
    assert "Empathic-Insight-Face-Small" not in result.stderr and not out.exists()


def test_a_worker_names_every_missing_model_before_its_first_job(tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache"), "REDIS_URL": "redis://127.0.0.1:9/0"}
    for extra in ([], ["--no-preload"]):
        result = run("worker", "--burst", *extra, env=env)
        _assert_one_line_error(result, "laion/Empathic-Insight-Face-Small", "google/siglip2-so400m-patch16-384",
                               "laion/Empathic-Insight-Voice-Small", "mkrausio/EmoWhisper-AnS-Small-v0.1",
                               "`empathic models download --face small --voice small`")


def test_weights_from_a_plain_folder_per_model(clip, hub_cache, tmp_path):
    import shutil

    root = tmp_path / "weights"
    for repo_id in ("laion/Empathic-Insight-Face-Small", "google/siglip2-so400m-patch16-384"):
        (snapshot,) = (hub_cache / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir()
        shutil.copytree(snapshot, root / repo_id, symlinks=False)
    empty_cache = {"HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    result = run("annotate", clip, "-q", "--weights-dir", root, env=empty_cache, check=True)
    info = json.loads(result.stdout)["info"]["model_info"]
    assert info["revision"] == "local" and info["backbone_revision"] == "local"
    # one folder named explicitly for one repo, the other from --weights-dir
    moved = tmp_path / "elsewhere"
    shutil.move(root / "laion/Empathic-Insight-Face-Small", moved)
    run("annotate", clip, "-q", "--weights-dir", root,
        "--model-dir", f"laion/Empathic-Insight-Face-Small={moved}", env=empty_cache, check=True)
    (moved / "model_awe_best.pth").unlink()
    result = run("annotate", clip, "-q", "--weights-dir", root,
                 "--model-dir", f"laion/Empathic-Insight-Face-Small={moved}", env=empty_cache)
    _assert_one_line_error(result, "lacks 1 file(s): model_awe_best.pth")


def test_models_download_needs_a_choice_and_reports_offline_failure(tmp_path):
    _assert_one_line_error(run("models", "download"), "--face small|large")
    result = run("models", "download", "--face", "small", "--to", tmp_path / "w")
    assert result.returncode == 1 and "Traceback" not in result.stderr
