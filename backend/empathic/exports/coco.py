"""COCO detection JSON of a face analysis: one image per sampled frame, one annotation per face."""

from __future__ import annotations

import json
from pathlib import Path

from ..persons.quality import QualityOptions, face_quality
from ..results import FaceAnalysis

FACE_CATEGORY_ID = 1


def frame_file_name(media_name: str, frame_index: int) -> str:
    return f"{Path(media_name).stem}_frame_{frame_index:06d}.jpg"


def to_coco(analysis: FaceAnalysis, top_k: int = 5, persons=None) -> dict:
    """``persons`` (a PersonsAnalysis, with ``--fuse``) adds each face's ``person_id`` and, where the
    track speaks a diarized speaker's segments, that ``speaker_id``."""
    media = analysis.media
    model_info = analysis.model.to_dict()
    images = [
        {"id": f.sample_index + 1, "file_name": frame_file_name(media["file_name"], f.frame_index),
         "width": f.width, "height": f.height, "frame_number": f.frame_index,
         "timestamp": round(f.time_s, 6)}
        for f in analysis.frames
    ]
    image_id_of = {f.sample_index: f.sample_index + 1 for f in analysis.frames}
    annotations = []
    for number, face in enumerate(analysis.faces, start=1):
        box = face.box.to_list()
        observed = face.to_dict(top_k)
        annotations.append({
            "id": number,
            "image_id": image_id_of[face.sample_index],
            "category_id": FACE_CATEGORY_ID,
            "bbox": box,
            "area": round(box[2] * box[3], 2),
            "iscrowd": 0,
            "confidence": observed["detection_confidence"],
            "timestamp": observed["time_s"],
            "frame_number": face.frame_index,
            "track_id": face.track_id,
            **_person_fields(persons, face.track_id),
            "attributes": {
                "emotions": observed["emotions"],
                "dimensions": observed["dimensions"],
                "quality": _quality(face),
                "model_info": model_info,
            },
        })
    return {
        "info": {
            "description": f"LAION Empathic Insight face emotions for {media['file_name']}",
            "media": dict(media),
            "model_info": model_info,
            "parameters": {**dict(analysis.parameters), "top_k": top_k},
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": FACE_CATEGORY_ID, "name": "face", "supercategory": "person"}],
    }


def _quality(face) -> dict:
    """How far the face can be trusted (persons.quality): 0..1, the crop's sharpness, the flags."""
    score, flags = face_quality(face, QualityOptions())
    return {"score": score, "sharpness": None if face.sharpness is None else round(face.sharpness, 2),
            "flags": list(flags)}


def _person_fields(persons, track_id: int) -> dict:
    person = persons.person_of_track(track_id) if persons is not None else None
    if person is None:
        return {}
    return {"person_id": person.person_id, "speaker_id": person.speaker_id}


class WriteCOCO:
    extension = "coco.json"

    def __init__(self, top_k: int = 5):
        self.top_k = top_k

    def render(self, analysis: FaceAnalysis, persons=None) -> str:
        return json.dumps(to_coco(analysis, self.top_k, persons), indent=2, ensure_ascii=False) + "\n"
