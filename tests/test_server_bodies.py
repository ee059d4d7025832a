"""Malformed bodies and random labeling configs: a 4xx with a one-line reason, or a valid answer,
never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from empathic.labelstudio.cache import MemoryCache
from empathic.labelstudio.server import create_app
from empathic.labelstudio.service import AnalysisService
from empathic.labelstudio.settings import BackendSettings

CONFIGS = Path(__file__).resolve().parents[1] / "labeling_configs"
AUDIO_CONFIG = (CONFIGS / "audio_voice.xml").read_text()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bodies")
    service = AnalysisService(BackendSettings(device="cpu", media_cache_dir=folder / "media", model_version="v",
                                              inline_budget_s=0.0), cache=MemoryCache())
    application = create_app(service)
    with application.test_client() as client:
        yield client


def _post(app, route: str, body, raw: bool = False):
    if raw:
        return app.post(route, data=body, content_type="application/json")
    return app.post(route, data=json.dumps(body), content_type="application/json")


BAD = [
    ("/predict", True, "takes a JSON object, got a boolean"),
    ("/predict", "tasks", "takes a JSON object, got a string"),
    ("/predict", [], "takes a JSON object, got a list"),
    ("/predict", 3.5, "takes a JSON object, got a number"),
    ("/predict", {"tasks": "all", "label_config": AUDIO_CONFIG}, "'tasks' must be a list, got a string"),
    ("/predict", {"tasks": [1], "label_config": AUDIO_CONFIG}, "task 0 of 'tasks' must be an object, got a number"),
    ("/predict", {"tasks": []}, "'label_config' is missing"),
    ("/predict", {"tasks": [], "label_config": ""}, "'label_config' is empty"),  # found by hypothesis
    ("/setup", {"schema": "  "}, "'schema' is empty"),
    ("/predict", {"tasks": [], "label_config": 5}, "'label_config' must be a string, got a number"),
    ("/predict", {"tasks": [], "label_config": AUDIO_CONFIG, "params": []}, "'params' must be an object, got a list"),
    ("/predict", {"tasks": [], "label_config": AUDIO_CONFIG, "project": [1]}, "'project' must be a string or a number"),
    ("/predict", {"tasks": [], "label_config": "<View><Video"}, "not valid XML"),
    ("/predict", {"tasks": [], "label_config": "<View><Text name='t' value='$text'/></View>"}, "no <Video> or <Audio>"),
    ("/setup", None, "takes a JSON object, got no JSON"),
    ("/setup", {"project": "1.1"}, "'schema' is missing"),
    ("/setup", {"schema": {"a": 1}}, "'schema' must be a string, got an object"),
    ("/setup", {"schema": '<View><Audio name="a" value="$a"/><Labels name="l" toName="a">'
                          '<Label value="Chair"/></Labels></View>'}, "'Chair'"),
    ("/setup", {"schema": '<View><Labels name="l" toName="missing"><Label value="Joy"/></Labels></View>'},
     "no <Video> or <Audio>"),
    ("/setup", {"schema": AUDIO_CONFIG, "project": True}, "'project' must be a string or a number, got a boolean"),
    ("/webhook", "ANNOTATION_CREATED", "takes a JSON object, got a string"),
    ("/webhook", {"action": ["x"]}, "'action' must be a string, got a list"),
    ("/webhook", {"action": "START_TRAINING", "project": "3"}, "'project' must be an object, got a string"),
]


@pytest.mark.parametrize("route, body, fragment", BAD)
def test_malformed_bodies_get_a_400_with_a_one_line_reason(app, route, body, fragment, caplog):
    response = _post(app, route, body) if body is not None else app.post(route, data="not json")
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert fragment in error and "\n" not in error
    caplog.clear()  # a config Label Studio sends with /predict that cannot be used is logged as an error


def test_well_formed_bodies_still_work(app, caplog):
    assert _post(app, "/setup", {"schema": AUDIO_CONFIG, "project": 3}).status_code == 200
    response = _post(app, "/predict", {"tasks": [{"id": 1, "data": {}}, {"id": 2}], "label_config": AUDIO_CONFIG,
                                       "project": "3.17", "params": {"login": None, "context": {"x": 1},
                                                                     "defer": 5, "not an identifier": 1}})
    assert response.status_code == 200 and response.get_json()["results"] == [[], []]  # each task failed alone
    assert _post(app, "/webhook", {"action": "TASKS_CREATED"}).get_json() == {"status": "Unknown event"}
    assert _post(app, "/webhook", {"action": "START_TRAINING", "project": {"id": 3}}).status_code == 201
    caplog.clear()  # the two failing tasks logged their errors


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
PROTOCOL_KEYS = st.sampled_from(["tasks", "label_config", "params", "project", "schema", "action", "extra_params",
                                 "hostname", "access_token", "data", "id"])
BODIES = JSON | st.dictionaries(PROTOCOL_KEYS, JSON, max_size=5) | st.fixed_dictionaries(
    {"tasks": st.lists(st.dictionaries(st.sampled_from(["id", "data"]), JSON, max_size=2), max_size=3),
     "label_config": st.just(AUDIO_CONFIG) | st.text(max_size=20)}, optional={"params": JSON, "project": JSON})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/predict", "/setup", "/webhook"]), body=BODIES)
def test_random_bodies_never_get_a_500(app, route, body, caplog):
    response = _post(app, route, body)
    assert response.status_code in (200, 201, 400), (route, body, response.get_data(as_text=True))
    if response.status_code == 400:
        assert "\n" not in response.get_json()["error"]
    caplog.clear()


TAGS = st.sampled_from(["Video", "Audio", "Labels", "Choices", "TimelineLabels", "VideoRectangle", "Taxonomy",
                        "Number", "TextArea", "Text", "Image", "Header", "Rating"])
LABELS = st.sampled_from(["Happy", "Sad", "Joy", "Chair", "Neutral", "Amusement", "Negative", "", "Face", "&amp;"])
ATTRIBUTES = st.sampled_from(['name="a"', 'name="v"', 'toName="a"', 'toName="v"', 'toName="x"', 'value="$video"',
                              'value="$audio"', 'value="text"', 'perRegion="true"', 'model_threshold="x"',
                              'model_top_k="99"', 'model_pps="-1"', 'model_segmentation="diarization"',
                              'model_size="huge"', 'model_source="fused"', 'frameRate="$fps"', 'min="a"'])


@st.composite
def label_configs(draw):
    parts = ["<View>"]
    for _ in range(draw(st.integers(0, 6))):
        tag = draw(TAGS)
        attributes = " ".join(dict.fromkeys(draw(st.lists(ATTRIBUTES, max_size=4))))
        children = "".join(f'<Label value="{draw(LABELS)}"/>' for _ in range(draw(st.integers(0, 3))))
        parts.append(f"<{tag} {attributes}>{children}</{tag}>" if children else f"<{tag} {attributes}/>")
    if draw(st.booleans()):
        parts.append("</View>")
    return "".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=label_configs())
def test_random_labeling_configs_are_taken_or_refused_never_a_500(app, config, caplog):
    setup = _post(app, "/setup", {"schema": config, "project": "1.1"})
    assert setup.status_code in (200, 400), (config, setup.get_data(as_text=True))
    predict = _post(app, "/predict", {"tasks": [{"id": 1, "data": {"video": "/nowhere.mp4", "audio": 3}}],
                                      "label_config": config, "project": "1.1"})
    assert predict.status_code in (200, 400), (config, predict.get_data(as_text=True))
    if predict.status_code == 200:
        assert predict.get_json()["results"] == [[]]  # the task fails alone: no such media
    caplog.clear()
