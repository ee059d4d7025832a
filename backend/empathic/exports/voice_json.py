"""The voice analysis as JSON: ``segments`` with times, speaker, emotions, attributes, transcript."""

from __future__ import annotations

import json

from ..results import VoiceAnalysis


class WriteVoiceJSON:
    extension = "voice.json"

    def __init__(self, top_k: int | None = None):
        self.top_k = top_k  # None: all 40 emotions per segment

    def render(self, analysis: VoiceAnalysis) -> str:
        return json.dumps(analysis.to_dict(self.top_k), indent=2, ensure_ascii=False) + "\n"
