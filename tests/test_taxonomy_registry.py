from empathic import taxonomy
from empathic.registry import FACE_MODELS, VOICE_MODELS, face_model

import pytest


def test_forty_unique_emotions_in_seven_laion_families():
    assert len(taxonomy.EMOTIONS) == 40
    assert len(set(taxonomy.EMOTION_IDS)) == 40
    assert all(e.id.isidentifier() and e.id == e.id.lower() for e in taxonomy.EMOTIONS)
    assert {e.family for e in taxonomy.EMOTIONS} == set(taxonomy.FAMILIES)
    assert len(taxonomy.FAMILIES) == 7


@pytest.mark.parametrize("file_name, emotion_id", [
    ("model_jealousy_&_envy_best.pth", "jealousy_envy"),
    ("model_Jealousy_&_Envy_best.pth", "jealousy_envy"),
    ("model_impatience_and_irritability_best.pth", "impatience_irritability"),
    ("model_Impatience_and_Irritability_best.pth", "impatience_irritability"),
    ("model_intoxication_altered_states_of_consciousness_best.pth", "intoxication_altered_states"),
    ("model_Intoxication_Altered_States_of_Consciousness_best.pth", "intoxication_altered_states"),
    ("model_Hope_Enthusiasm_Optimism_best.pth", "hope_enthusiasm_optimism"),
    ("model_elation_best.pth", "elation"),
    ("model_valence_best.pth", None),
    ("README.md", None),
])
def test_face_and_voice_file_names_map_to_one_id(file_name, emotion_id):
    assert taxonomy.emotion_id_for_file(file_name) == emotion_id


def test_head_file_lists_match_the_spec():
    small, large = FACE_MODELS["small"], FACE_MODELS["large"]
    assert len(small.head_file_names()) == 44 and len(large.head_file_names()) == 40
    assert "model_jealousy_&_envy_best.pth" in small.head_file_names()
    assert small.dimension_file_names() == (
        "model_valence_best.pth", "model_arousal_best.pth", "model_dominance_best.pth",
        "model_emotional_vulnerability_best.pth")
    voice = VOICE_MODELS["small"].head_file_names()
    assert len(voice) == 55
    for name in ("model_Jealousy_&_Envy_best.pth", "model_Submissive_vs._Dominant_best.pth",
                 "model_High-Pitched_vs._Low-Pitched_best.pth", "model_Vulnerable_vs._Emotionally_Detached_best.pth"):
        assert name in voice
    assert small.neutral.format == "flat" and large.neutral.format == "nested"
    assert small.backbone.repo_id == "google/siglip2-so400m-patch16-384"


def test_voice_attribute_orientation_is_documented():
    scales = {d.id: d.scale for d in taxonomy.VOICE_ATTRIBUTES}
    assert "detached" in scales["vulnerable_detached"].high_meaning
    assert scales["warm_cold"].high_meaning == "very warm" and scales["soft_harsh"].high_meaning == "very soft"


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown face model size 'medium'"):
        face_model("medium")
