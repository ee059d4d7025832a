import numpy as np
import pytest

from empathic.scoring import score_rows, softmax
from empathic.taxonomy import EMOTION_IDS


def test_share_is_a_softmax_of_intensities_over_the_40_emotions_only():
    rng = np.random.default_rng(0)
    raw = rng.uniform(-0.5, 6, (3, 44))
    neutral = rng.uniform(0, 2, 44)
    rows = score_rows(raw, neutral, ("valence", "arousal", "dominance", "emotional_vulnerability"))
    for r, (emotions, dims) in enumerate(rows):
        assert len(emotions) == 40
        by_id = {e.emotion_id: e for e in emotions}
        expected_share = softmax(raw[r, :40] - neutral[:40])
        for j, emotion_id in enumerate(EMOTION_IDS):
            assert by_id[emotion_id].raw == pytest.approx(raw[r, j])
            assert by_id[emotion_id].intensity == pytest.approx(raw[r, j] - neutral[j])
            assert by_id[emotion_id].share == pytest.approx(expected_share[j])
        assert sum(e.share for e in emotions) == pytest.approx(1.0)
        assert [e.rank for e in emotions] == list(range(1, 41))
        assert [e.share for e in emotions] == sorted((e.share for e in emotions), reverse=True)
        # dimensions keep their raw value and do not change any share
        assert dict(dims) == pytest.approx(dict(zip(
            ("valence", "arousal", "dominance", "emotional_vulnerability"), raw[r, 40:])))


def test_dimensions_never_enter_the_softmax():
    raw = np.zeros((1, 41))
    base = score_rows(raw, None, ("valence",))[0][0]
    raw[0, 40] = 100.0
    changed = score_rows(raw, None, ("valence",))[0][0]
    assert [e.share for e in base] == [e.share for e in changed]


def test_wrong_width_is_rejected():
    with pytest.raises(ValueError, match=r"expected raw scores \[N, 44\]"):
        score_rows(np.zeros((1, 40)), None, ("a", "b", "c", "d"))
