"""The face analysis as JSON: media, model, parameters, sampled frames and every face observation."""

from __future__ import annotations

import json

from ..results import FaceAnalysis


class WriteFaceJSON:
    extension = "faces.json"

    def __init__(self, top_k: int | None = None):
        self.top_k = top_k  # None: all 40 emotions per face

    def render(self, analysis: FaceAnalysis) -> str:
        return json.dumps(analysis.to_dict(self.top_k), indent=2, ensure_ascii=False) + "\n"
