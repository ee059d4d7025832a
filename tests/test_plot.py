"""Plots of analyses: the data drawn (pure), the PNG and the offline HTML read back, the command line.

The analyses are constructed, so what each panel must show is known; one test runs the real
``empathic annotate --plot`` and ``empathic plot`` on a generated video with tiny replica models.
"""

import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from empathic.exports.persons_json import DOCUMENT_VERSION, persons_document
from empathic.persons.analysis import analyze_persons
from empathic.persons.fusion import FusionOptions
from empathic.persons.linking import make_linker
from empathic.plots import html as html_plot
from empathic.plots import png as png_plot
from empathic.plots.series import PERSONS_DOCUMENT_VERSION, DocumentError, document_kind, plot_data
from empathic.results import Box, EmotionScore, FaceAnalysis, FaceObservation, FrameRecord, ModelInfo, VoiceAnalysis, \
    VoiceSegment
from empathic.taxonomy import EMOTION_IDS
from test_cli import _assert_one_line_error, run
from test_persons_core import _evidence

DURATION = 12.0
PPS = 2.0
FACE_MODEL = ModelInfo("face", "small", "laion/Empathic-Insight-Face-Small", "c", "main", "b", "c", "fp32")
VOICE_MODEL = ModelInfo("voice", "small", "laion/Empathic-Insight-Voice-Small", "c", "main", "w", "c", "fp32")
DIMENSIONS = ("valence", "arousal", "dominance", "emotional_vulnerability")


def _scores(weights: dict[str, float]) -> tuple[EmotionScore, ...]:
    """All 40 emotions; the named ones stand out, the others share the rest."""
    logits = np.array([weights.get(e, 0.0) for e in EMOTION_IDS])
    shares = np.exp(logits) / np.exp(logits).sum()
    order = sorted(range(len(EMOTION_IDS)), key=lambda i: (-shares[i], i))
    return tuple(EmotionScore(EMOTION_IDS[i], float(logits[i]), float(logits[i]), float(shares[i]), rank)
                 for rank, i in enumerate(order, start=1))


def face_analysis() -> FaceAnalysis:
    """Track 1 seen throughout, turning from elation to sadness; track 2 seen only in 0-4 s and
    8-12 s, mostly anger."""
    frames, faces = [], []
    for index in range(int(DURATION * PPS)):
        t = index / PPS
        frames.append(FrameRecord(index, int(t * 25), t, 960, 540))
        turn = t / DURATION
        faces.append(FaceObservation(index, int(t * 25), t, Box(100, 100, 150, 150), 0.95, 1,
                                     _scores({"elation": 3 * (1 - turn), "sadness": 3 * turn, "interest": 1.0}),
                                     tuple((d, 0.1 * k + turn) for k, d in enumerate(DIMENSIONS)), 200.0))
        if t < 4 or t >= 8:
            faces.append(FaceObservation(index, int(t * 25), t, Box(600, 100, 150, 150), 0.9, 2,
                                         _scores({"anger": 2.5, "contempt": 1.5, "doubt": 0.5 + 0.1 * t}),
                                         tuple((d, -0.5) for d in DIMENSIONS), 180.0))
    return FaceAnalysis({"path": "/data/session.mp4", "file_name": "session.mp4", "duration_s": DURATION,
                         "width": 960, "height": 540, "average_fps": 25.0}, tuple(frames), tuple(faces),
                        FACE_MODEL, (("pps", PPS),))


VOICES = [(1.0, 3.0, "S_A", "elation"), (4.0, 6.0, "S_B", "anger"), (6.5, 8.0, "S_A", "elation"),
          (9.0, 11.0, "S_C", "fear")]


def voice_analysis(shots=(0.0, 5.0)) -> VoiceAnalysis:
    segments = tuple(VoiceSegment(i, a, b, speaker, _scores({top: 3.0}),
                                  (("valence", 1.0 - i), ("arousal", 2.0 + 0.5 * i), ("age", 3.0)))
                     for i, (a, b, speaker, top) in enumerate(VOICES))
    return VoiceAnalysis({"path": "/data/session.mp4", "file_name": "session.mp4", "duration_s": DURATION},
                         segments, VOICE_MODEL, "diarization", (("segmentation", "diarization"),), shots)


def persons_analysis():
    evidence = _evidence({1: [(1, 3), (6.5, 8)], 2: [(4, 6)], 3: [(9, 11)]}, tracks=(1, 2))
    return analyze_persons(face_analysis(), voice_analysis(), evidence, make_linker(), FusionOptions(),
                           shots_s=(0.0, 5.0))


@pytest.fixture(scope="module")
def documents() -> dict[str, dict]:
    """The documents as `annotate -f json -f persons --top-k 40` writes them, read back from JSON."""
    written = {"session.faces.json": face_analysis().to_dict(), "session.voice.json": voice_analysis().to_dict(),
               "session.persons.json": persons_document(persons_analysis(), None)}
    return {name: json.loads(json.dumps(document)) for name, document in written.items()}


def test_each_document_kind_is_recognised_and_anything_else_is_named(documents):
    assert [document_kind(d) for d in documents.values()] == ["faces", "voice", "persons"]
    assert PERSONS_DOCUMENT_VERSION == DOCUMENT_VERSION
    coco = {"images": [], "annotations": [], "categories": []}
    for document, fragment in ((coco, "a COCO file"), ([1, 2], "a JSON list, not an analysis"),
                               ({"hello": 1}, "not an analysis of `empathic annotate`"),
                               ({**documents["session.persons.json"], "version": 2}, "persons document version 2")):
        with pytest.raises(DocumentError, match=re.escape(fragment)):
            document_kind(document)


def test_face_tracks_show_their_top_emotions_with_breaks_where_a_track_is_not_seen(documents):
    data = plot_data({"session.faces.json": documents["session.faces.json"]}, top=3)
    first, second = data.emotion_panels
    assert first.title == "face track 1" and second.title == "face track 2"
    assert {line.emotion_id for line in first.lines} == {"elation", "sadness", "interest"}
    assert [line.emotion_id for line in second.lines] == ["anger", "contempt", "doubt"]  # best mean first
    assert all(a.mean_share >= b.mean_share for a, b in zip(second.lines, second.lines[1:]))
    sadness = next(line for line in first.lines if line.emotion_id == "sadness")
    assert sadness.shares[-1] > sadness.shares[0] and None not in sadness.shares and len(sadness.shares) == 24
    anger = second.lines[0]
    # seen in 0-4 s and 8-12 s: one break between, none at either end
    assert anger.shares.count(None) == 1 and anger.times_s[anger.shares.index(None)] == 4.0
    assert len(second.moments) == 16 and all(len(m.shares) == 40 for m in second.moments) and second.complete
    dimensions, = data.value_panels
    assert dimensions.labels == ("Valence", "Arousal", "Dominance", "Emotional Vulnerability")
    assert dimensions.groups == ("track 1", "track 2") and len(dimensions.lines) == 8
    assert data.voice is None and data.cuts_s == () and data.duration_s == DURATION and data.notes == ()
    assert data.title == "session.mp4: faces"


def test_faces_voices_and_persons_make_one_figure(documents):
    data = plot_data(documents)
    titles = [p.title for p in data.emotion_panels]
    assert titles[:2] == ["face track 1 (PERSON_1)", "face track 2 (PERSON_2)"]
    assert titles[2:] == ["PERSON_1 (track 1, S_A): fused face and voice", "PERSON_2 (track 2, S_B): fused face "
                          "and voice", "PERSON_3 (off screen, S_C): fused face and voice"]
    assert all(len(p.lines) == 5 for p in data.emotion_panels)
    voice = data.voice
    assert voice.rows == ("PERSON_1", "PERSON_2", "PERSON_3")  # voices named after their persons
    assert [(b.row, b.top_emotion) for b in voice.bars] == [("PERSON_1", "Elation"), ("PERSON_2", "Anger"),
                                                            ("PERSON_1", "Elation"), ("PERSON_3", "Fear")]
    faces, voices = data.value_panels
    assert voices.labels == ("Valence", "Arousal") and voices.groups == voice.rows
    assert voices.title == ("voice valence (-3 extremely negative .. 3 extremely positive), arousal (0 very calm .. "
                            "4 very excited), per segment")
    assert len(voices.lines) == 6  # valence and arousal of three persons
    valence = voices.lines[0]
    assert valence.times_s[:3] == (1.0, 3.0, 3.0) and valence.values[:3] == (1.0, 1.0, None)
    assert data.cuts_s == (5.0,) and len(data.panels) == 8
    # the persons document alone still gives the voice segments, from its own per-segment view
    alone = plot_data({"p.json": documents["session.persons.json"]})
    assert [(b.row, b.top_emotion) for b in alone.voice.bars] == [(b.row, b.top_emotion) for b in voice.bars]
    assert len(alone.panels) == 4 and alone.cuts_s == (5.0,)


def test_a_document_written_with_top_k_below_40_is_drawn_with_what_it_lists():
    data = plot_data({"f.json": json.loads(json.dumps(face_analysis().to_dict(5)))})
    panel = data.emotion_panels[0]
    assert panel.listed == 5 and not panel.complete and all(len(m.shares) == 5 for m in panel.moments)
    assert data.notes == ("faces: the file lists the top 5 of 40 emotions per face (--top-k 5); lines break "
                          "where an emotion is not listed",)
    text = html_plot.moment_text("face track 1, 0.00 s", panel.moments[0], panel.listed)
    assert len(_shares_in(text)) == 5 and "5 of 40 emotions: the file was written with --top-k 5" in text


def test_bad_combinations_name_the_document(documents):
    other = {**documents["session.voice.json"], "media": {"file_name": "other.wav", "duration_s": 3.0}}
    with pytest.raises(DocumentError, match=r"o.json and session.faces.json describe different media "
                                            r"\(other.wav, session.mp4\)"):
        plot_data({"session.faces.json": documents["session.faces.json"], "o.json": other})
    with pytest.raises(DocumentError, match="b.json: a second face analysis \\(the first is a.json\\)"):
        plot_data({"a.json": documents["session.faces.json"], "b.json": documents["session.faces.json"]})
    damaged = json.loads(json.dumps(documents["session.faces.json"]))
    del damaged["faces"][3]["time_s"]
    with pytest.raises(DocumentError, match="d.json: a damaged face analysis \\(KeyError: 'time_s'\\)"):
        plot_data({"d.json": damaged})
    unknown = json.loads(json.dumps(documents["session.voice.json"]))
    unknown["segments"][0]["emotions"]["glee"] = {"score": 0.5}
    with pytest.raises(DocumentError, match="u.json: unknown emotion id 'glee'"):
        plot_data({"u.json": unknown})


def _distinct_colours(png: bytes) -> tuple[Image.Image, int]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return image, len(image.getcolors(maxcolors=1 << 20))


def test_png_has_one_axes_per_panel_and_is_drawn(documents):
    data = plot_data(documents)
    fig = png_plot.figure(data)
    assert len(fig.axes) == len(data.panels) == 8
    assert [len(ax.get_lines()) for ax in fig.axes[:5]] == [5 + 1] * 5  # five emotions and the cut
    assert len(fig.axes[5].patches) == 4  # the voice segments
    assert {t.get_text() for t in fig.axes[5].texts} >= {"Elation", "Anger", "Fear"}
    png = png_plot.png_bytes(fig)
    image, colours = _distinct_colours(png)
    assert image.size[0] == 1400 and image.size[1] > 1500
    assert colours > 200 and np.asarray(image).std() > 20
    assert png_plot.png_bytes(png_plot.figure(plot_data(documents))) == png  # deterministic


def test_a_figure_with_nothing_found_says_so(documents):
    empty = {**documents["session.faces.json"], "faces": []}
    data = plot_data({"e.json": empty})
    assert data.panels == () and data.notes == ("faces: no face found",)
    fig = png_plot.figure(data)
    assert len(fig.axes) == 1 and "no face found" in fig.axes[0].texts[0].get_text()
    image, _ = _distinct_colours(png_plot.png_bytes(fig))
    assert image.size[0] == 1400
    page = html_plot.page(html_plot.figure(data))
    assert _traces(page) == [] and "nothing to plot: faces: no face found" in page


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.bodies, self._inside = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.sources += [v for k, v in attrs if k == "src"]
            self._inside = True
            self.bodies.append("")

    def handle_endtag(self, tag):
        self._inside = self._inside and tag != "script"

    def handle_data(self, data):
        if self._inside:
            self.bodies[-1] += data


def _traces(page: str) -> list[dict]:
    """The traces handed to Plotly.newPlot in the page."""
    call = page.index("Plotly.newPlot(")
    start = page.index("[", call)
    traces, _ = json.JSONDecoder().raw_decode(page[start:])
    return traces


def _shares_in(hover: str) -> list[str]:
    return re.findall(r"<br>[^<:]+: \d\.\d{3}", hover)


def test_html_is_offline_and_hovering_a_moment_shows_all_40_shares(documents):
    data = plot_data(documents)
    page = html_plot.page(html_plot.figure(data))
    scripts = _Scripts()
    scripts.feed(page)
    assert scripts.sources == [] and not re.search(r"<script[^>]+src=", page)
    assert any("plotly.js v" in body or "Plotly" in body and len(body) > 1_000_000 for body in scripts.bodies)
    traces = _traces(page)
    # five emotion lines and the moment bands per track and person, a bar trace per voice row,
    # four dimensions of two tracks, valence and arousal of three persons
    assert len(traces) == 5 * 6 + 3 + 8 + 6
    bands = [t for t in traces if t.get("name") == "all shares"]
    assert len(bands) == 5 and len(bands[0]["hovertext"]) == 24
    for band in bands:
        assert all(len(_shares_in(text)) == 40 for text in band["hovertext"])
    first = bands[0]["hovertext"][0]
    assert first.startswith("<b>face track 1 (PERSON_1), 0.00 s</b><br>Elation: 0.330<br>")
    bars = [t for t in traces if t.get("orientation") == "h"]
    assert [t["name"] for t in bars] == ["PERSON_1", "PERSON_2", "PERSON_3"]
    assert all(len(_shares_in(text)) == 40 for t in bars for text in t["hovertext"])
    assert html_plot.page(html_plot.figure(plot_data(documents))) == page  # deterministic


def test_plot_command_and_annotate_plot_draw_the_same_figure(voice_hub_cache, two_voice_video, tmp_path):
    out = tmp_path / "out"
    run("annotate", two_voice_video, "--face", "--voice", "--detector", "none", "--pps", "1", "--top-k", "40",
        "-f", "json", "--plot", "--device", "cpu", "-q", "-o", out, check=True)
    stem = two_voice_video.stem
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"{stem}.faces.json", f"{stem}.plot.html", f"{stem}.plot.png", f"{stem}.voice.json"]
    again = tmp_path / "again"
    result = run("plot", out / f"{stem}.faces.json", out / f"{stem}.voice.json", "-o", again / "p.png",
                 "-o", again / "p.html", check=True)
    assert result.stdout == "" and result.stderr == ""
    assert (again / "p.html").read_text() == (out / f"{stem}.plot.html").read_text()
    assert (again / "p.png").read_bytes() == (out / f"{stem}.plot.png").read_bytes()
    traces = _traces((again / "p.html").read_text())
    bands = [t for t in traces if t.get("name") == "all shares"]
    assert len(bands) == 1 and all(len(_shares_in(text)) == 40 for text in bands[0]["hovertext"])
    run("plot", out / f"{stem}.voice.json", "-o", again / "voice.png", "--top", "3", check=True)
    _, colours = _distinct_colours((again / "voice.png").read_bytes())
    assert colours > 50


def test_plot_errors_are_one_line(two_voice_video, tmp_path, documents):
    coco = tmp_path / "x.coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    notes = tmp_path / "notes.json"
    notes.write_text("hello")
    faces = tmp_path / "s.faces.json"
    faces.write_text(json.dumps(documents["session.faces.json"]))
    _assert_one_line_error(run("plot", tmp_path / "nope.json", "-o", tmp_path / "p.png"), "nope.json",
                           "no such file")
    _assert_one_line_error(run("plot", coco, "-o", tmp_path / "p.png"), "x.coco.json: a COCO file")
    _assert_one_line_error(run("plot", notes, "-o", tmp_path / "p.png"), "notes.json: not JSON")
    _assert_one_line_error(run("plot", faces, "-o", tmp_path / "p.pdf"), "p.pdf", ".png or .html")
    _assert_one_line_error(run("annotate", two_voice_video, "--voice", "--plot", "-q"), "--plot", "-o FOLDER")
    assert not list(tmp_path.glob("p.*"))


def test_plot_is_a_flag_that_leaves_the_input_alone():
    from empathic.cli import _build_parser

    args = _build_parser().parse_args(["annotate", "--plot", "clip.mp4", "-o", "out"])
    assert str(args.input) == "clip.mp4" and args.plot == "both" and args.plot_format is None
    args = _build_parser().parse_args(["annotate", "clip.mp4", "--plot", "--plot-format", "png", "-o", "out"])
    assert args.plot == "both" and args.plot_format == "png"
