"""``empathic annotate`` on sound: audio files, a video's sound track, several outputs at once."""

import json

import pytest
import webvtt

from media_factory import background, write_video
from test_cli import _assert_one_line_error, run


def test_an_audio_file_defaults_to_voice_and_webvtt(two_voices, voice_hub_cache):
    result = run("annotate", two_voices.path, "--device", "cpu", check=True)
    captions = list(webvtt.from_string(result.stdout))
    assert [c.start for c in captions] == ["00:00:00.000", "00:00:05.000", "00:00:10.000"]
    assert all(c.text.startswith("EMOTIONS: ") and c.text.count("(") == 5 for c in captions)
    assert "segment" in result.stderr  # the progress bar, on stderr only


def test_face_and_voice_of_one_video_in_one_run(two_voice_video, voice_hub_cache, tmp_path):
    out = tmp_path / "out"
    result = run("annotate", two_voice_video, "--face", "--voice", "--segmentation", "vad", "-f", "coco",
                 "-f", "json", "-f", "webvtt", "--detector", "none", "--pps", "0.5", "-o", out, "-q", check=True)
    assert result.stdout == ""
    names = sorted(p.name for p in out.iterdir())
    assert names == ["two_voices.coco.json", "two_voices.faces.json", "two_voices.voice.json",
                     "two_voices.vtt"]
    coco = json.loads((out / "two_voices.coco.json").read_text())
    assert len(coco["images"]) == 7  # 12.3 s at 0.5 frames per second (the voice pps is separate)
    voice = json.loads((out / "two_voices.voice.json").read_text())
    assert voice["model_info"]["segmentation_mode"] == "vad" and len(voice["segments"]) == 2
    assert all(len(s["emotions"]) == 40 and len(s["attributes"]) == 15 for s in voice["segments"])
    assert len(list(webvtt.read(str(out / "two_voices.vtt")))) == 2


@pytest.mark.parametrize("mode", ["fixed", "vad", "scene"])
def test_every_mode_yields_scored_segments(mode, two_voice_video, voice_hub_cache):
    result = run("annotate", two_voice_video, "--voice", "--segmentation", mode, "-f", "json", "-q", check=True)
    document = json.loads(result.stdout)
    assert document["model_info"]["segmentation_mode"] == mode and document["segments"]
    for segment in document["segments"]:
        assert 0 <= segment["start_time"] < segment["end_time"] <= document["media"]["duration_s"] + 1e-6
        assert len(segment["emotions"]) == 40 and len(segment["attributes"]) == 15
    if mode == "scene":
        assert document["shots"] == [0.0]  # the test pattern has no cut


def test_voice_errors_are_one_line(media_dir, two_voices, voice_hub_cache, tmp_path):
    silent = write_video(media_dir / "cli_silent.mp4", [background(160, 120, s) for s in range(5)])
    _assert_one_line_error(run("annotate", silent, "--voice"), "cli_silent.mp4", "has no audio stream")
    _assert_one_line_error(run("annotate", two_voices.path, "-f", "rttm"), "needs --segmentation diarization")
    _assert_one_line_error(run("annotate", two_voices.path, "--face"), "no video stream")
    _assert_one_line_error(run("annotate", two_voices.path, "--segmentation", "scene"), "needs a video")
    _assert_one_line_error(run("annotate", two_voices.path, "-f", "json", "-f", "webvtt"), "need -o FOLDER")
    _assert_one_line_error(run("annotate", two_voices.path, "--max-segment-duration", "45"), "Whisper window")
    result = run("annotate", two_voices.path, env={"HF_HUB_CACHE": str(tmp_path / "empty")})
    _assert_one_line_error(result, "laion/Empathic-Insight-Voice-Small", "empathic models download --voice small")


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from pyannote_replica import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("cli-pyannote") / "pipeline")


def test_diarization_gives_speaker_segments_and_rttm(two_voice_video, voice_hub_cache, tiny_pipeline, tmp_path):
    out = tmp_path / "diarized"
    result = run("annotate", two_voice_video, "--voice", "--segmentation", "diarization", "--num-speakers", "2",
                 "--diarization-pipeline", tiny_pipeline, "-f", "json", "-f", "rttm", "-f", "webvtt", "-o", out,
                 "-q", check=True)
    assert result.stderr == ""
    document = json.loads((out / "two_voices.voice.json").read_text())
    segments = document["segments"]
    assert segments and document["model_info"]["segmentation_mode"] == "diarization"
    assert document["parameters"]["diarization_num_speakers"] == 2
    assert document["parameters"]["diarization_revision"] == "local"
    for earlier, later in zip(segments, segments[1:]):
        assert earlier["end_time"] <= later["start_time"] + 1e-6  # exclusive turns
    assert all(s["speaker_id"].startswith("SPEAKER_") and len(s["emotions"]) == 40 for s in segments)
    rttm = [line.split() for line in (out / "two_voices.rttm").read_text().splitlines()]
    assert rttm and all(f[0] == "SPEAKER" and f[1] == "two_voices" and f[7].startswith("SPEAKER_") for f in rttm)
    assert {f[7] for f in rttm} == {s["speaker_id"] for s in segments}
    assert sum(float(f[4]) for f in rttm) == pytest.approx(
        sum(s["end_time"] - s["start_time"] for s in segments), abs=1e-2)
    captions = list(webvtt.read(str(out / "two_voices.vtt")))
    assert [c.voice for c in captions] == [s["speaker_id"] for s in segments]


def test_transcribe_adds_each_segments_text(two_voices, asr_hub_cache, tmp_path):
    out = tmp_path / "transcribed"
    run("annotate", two_voices.path, "--segmentation", "vad", "--transcribe", "--language", "en", "-f", "json",
        "-f", "webvtt", "-o", out, "-q", check=True)
    document = json.loads((out / "two_voices.voice.json").read_text())
    texts = [s["transcription"] for s in document["segments"]]
    assert len(texts) == 2 and all(isinstance(t, str) and t and "<|" not in t for t in texts)
    assert document["parameters"]["transcription_model"] == "openai/whisper-small"
    assert document["parameters"]["transcription_language"] == "en"
    captions = list(webvtt.read(str(out / "two_voices.vtt")))
    assert len(captions) == 2 and all(len(c.text.splitlines()) == 2 for c in captions)


def test_voice_plus_from_the_command_line_and_its_revision_options(two_voices, voice_hub_cache, tmp_path):
    result = run("annotate", two_voices.path, "--model-size", "plus", "-f", "json", "-q", check=True)
    document = json.loads(result.stdout)
    info = document["model_info"]
    assert (info["repo"], info["revision"], info["requested_revision"]) == (
        "laion/Empathic-Insight-Voice-Plus", "441d220122d77cc43b60ffe3e13bf9358bf2fe8d",
        "441d220122d77cc43b60ffe3e13bf9358bf2fe8d")
    assert info["backbone"] == "laion/BUD-E-Whisper"  # the model's own encoder
    assert all(len(s["audio_quality"]) == 4 and len(s["attributes"]) == 15 for s in document["segments"])
    # --revision chooses another revision of the one head repository; a missing one is named in one line
    result = run("annotate", two_voices.path, "--model-size", "plus", "--revision", "v9")
    _assert_one_line_error(result, "laion/Empathic-Insight-Voice-Plus (revision v9")
    result = run("annotate", two_voices.path, "--revision", "laion/BUD-E-Whisper@v9", "--voice-encoder",
                 "bud-e-whisper")
    _assert_one_line_error(result, "laion/BUD-E-Whisper (revision v9", "--voice-encoder bud-e-whisper")
    _assert_one_line_error(run("annotate", two_voices.path, "--revision", "a b"), "--revision: revision 'a b'")
    _assert_one_line_error(run("models", "download", "--face", "small", "--voice", "plus", "--revision", "v2"),
                           "does not say its repository")
