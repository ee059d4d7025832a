"""``empathic annotate --fuse`` on generated talking faces, where who speaks when is known."""

import json

import pytest
import webvtt
from pympi.Elan import Eaf

from media_factory import background, moving_face_video, mux_audio, talking_faces_video, write_video
from test_cli import _assert_one_line_error, run

FUSE = ("--face", "--voice", "--fuse", "--segmentation", "vad", "--pps", "2", "--device", "cpu", "-q")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talking")
    return {name: talking_faces_video(folder / name, swap=name == "swap", still=name == "still")
            for name in ("plain", "swap", "still")}


def _annotate(clip, out, *extra):
    run("annotate", clip.path, *FUSE, "-f", "persons", "-f", "coco", "-f", "webvtt", "-f", "eaf", "-o", out,
        *extra, check=True)
    stem = clip.path.stem
    return (json.loads((out / f"{stem}.persons.json").read_text()), json.loads((out / f"{stem}.coco.json").read_text()),
            out / f"{stem}.vtt", out / f"{stem}.eaf")


def _face_of_track(coco, clip) -> dict[int, int]:
    """track id -> 0 (left face) or 1 (right face), by where its boxes are."""
    centres: dict[int, list[float]] = {}
    for annotation in coco["annotations"]:
        x, _, w, _ = annotation["bbox"]
        centres.setdefault(annotation["track_id"], []).append(x + w / 2)
    width = coco["images"][0]["width"]
    return {track: int(sum(c) / len(c) > width / 2) for track, c in centres.items()}


def linking_accuracy(persons, coco, clip) -> float:
    """Share of the speech time (the true voices' spans) attributed to the right face, or to
    nobody for the off-screen voice."""
    face_of = _face_of_track(coco, clip)
    right = total = 0.0
    for _, start, end, truth in clip.voices:
        for link in persons["links"]:
            overlap = max(0.0, min(end, link["end_time"]) - max(start, link["start_time"]))
            if overlap <= 0:
                continue
            total += overlap
            said = None if link["track_id"] is None else face_of[link["track_id"]]
            right += overlap if said == truth else 0.0
    return right / total


def test_each_voice_goes_to_the_face_that_speaks_it_and_the_third_is_off_screen(clips, voice_hub_cache, tmp_path):
    persons, coco, vtt, eaf_path = _annotate(clips["plain"], tmp_path / "plain")
    assert linking_accuracy(persons, coco, clips["plain"]) == 1.0
    face_of = _face_of_track(coco, clips["plain"])
    assert sorted(face_of.values()) == [0, 1]
    on_screen = [p for p in persons["persons"] if p["track_id"] is not None]
    off = [p for p in persons["persons"] if p["off_screen"]]
    assert len(on_screen) == 2 and len(off) == 1 and off[0]["speaking_s"] > 2
    for link in persons["links"]:
        if link["track_id"] is not None:
            assert link["confidence"] > 0.3 and link["evidence"]["correlation"] > 0.5
            assert -0.08 <= link["evidence"]["lag_s"] <= 0.24 and link["evidence"]["overlap_s"] > 0.5
    # COCO faces name their person; WebVTT voices are named after the linked person
    assert {a["person_id"] for a in coco["annotations"]} == {p["person_id"] for p in on_screen}
    cues = list(webvtt.read(vtt))
    person_of = {l["segment_index"]: l["person_id"] for l in persons["links"]}
    assert [c.voice for c in cues] == [person_of[i] for i in range(len(cues))]
    # the fused timeline covers both modalities where a face speaks
    speaking = [c for c in persons["timeline"] if c["face"] and c["voice"]]
    assert speaking and all(abs(c["face"]["weight"] + c["voice"]["weight"] - 1) < 1e-3 for c in speaking)
    assert persons["shots"] and persons["shots"][0]["start_time"] == 0.0
    # ELAN reads the file back: one tier per person and modality, shots, the same times
    eaf = Eaf(str(eaf_path))
    tiers = set(eaf.get_tier_names())
    for person in on_screen:
        assert {f"{person['person_id']} face", f"{person['person_id']} fused"} <= tiers
    off_id = off[0]["person_id"]
    assert {f"{off_id} voice", f"{off_id} speech", f"{off_id} fused", "shots"} <= tiers
    voice_cells = sorted(eaf.get_annotation_data_for_tier(f"{off_id} voice"))
    off_links = [l for l in persons["links"] if l["person_id"] == off_id]
    assert [(a, b) for a, b, _ in voice_cells] == [(round(l["start_time"] * 1000), round(l["end_time"] * 1000))
                                                   for l in off_links]


def test_swapping_the_mouths_swaps_the_links_and_still_faces_are_never_linked(clips, voice_hub_cache, tmp_path):
    persons, coco, _, _ = _annotate(clips["swap"], tmp_path / "swap")
    assert linking_accuracy(persons, coco, clips["swap"]) == 1.0
    persons, coco, _, _ = _annotate(clips["still"], tmp_path / "still")
    assert all(link["off_screen"] for link in persons["links"]) and persons["links"]
    assert all(p["speaker_id"] is None for p in persons["persons"])


def test_persons_document_is_deterministic(clips, voice_hub_cache, tmp_path):
    name = f"{clips['plain'].path.stem}.persons.json"
    first, _, _, _ = _annotate(clips["plain"], tmp_path / "a")
    _annotate(clips["plain"], tmp_path / "b")
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first["parameters"]["linking"]["linker"] == "synchrony"
    assert {"face_analysis", "voice_analysis", "evidence", "fusion"} <= set(first["parameters"])


def test_bad_input_gives_one_line_or_a_document_of_one_modality(clips, voice_hub_cache, tmp_path):
    _assert_one_line_error(run("annotate", clips["plain"].path, "--face", "--fuse", "-o", tmp_path / "x"),
                           "--fuse links voices to faces: it needs both --face and --voice")
    silent, _ = moving_face_video(tmp_path / "silent.mp4", seconds=2.0, faces=1)
    _assert_one_line_error(run("annotate", silent, *FUSE, "-o", tmp_path / "y"), "has no audio stream")
    _assert_one_line_error(run("annotate", clips["plain"].path, "--face", "-f", "eaf", "-o", tmp_path / "z"),
                           "-f eaf is for persons analysis; add --fuse")
    # a video without faces: persons made of voices alone
    faceless = write_video(tmp_path / "faceless_video.mp4",
                           (background(640, 360, seed=3) for _ in range(int(clips["plain"].duration_s * 25))), fps=25)
    with_sound = mux_audio(faceless, clips["plain"].wav, tmp_path / "faceless.mp4")
    result = run("annotate", with_sound, *FUSE, "-f", "persons", "-o", tmp_path / "faceless.persons.json",
                 check=True)
    assert result.returncode == 0
    document = json.loads((tmp_path / "faceless.persons.json").read_text())
    assert document["persons"] and all(p["off_screen"] for p in document["persons"])
    assert all(c["face"] is None and c["voice"] for c in document["timeline"])
