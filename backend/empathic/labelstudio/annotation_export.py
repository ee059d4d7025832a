"""``empathic export``: every annotation of a project written out as COCO, WebVTT, JSON or ELAN.

Files are named ``task-<task id>_annotation-<annotation id>.<format extension>``, and
``index.json`` lists each task's annotations, annotators, media and files. A task that cannot be
written (its media is gone, its result is unreadable) is named in the summary and the others are
still written. COCO needs the video's size in pixels: the media is fetched the way the backend
fetches it (MEDIA_ROOTS, LABEL_STUDIO_URL rules, the media cache) and only its headers are read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..exports.annotations import MediaFacts, to_coco, to_document, to_eaf_text, to_webvtt
from ..progress import ProgressHook
from ..review.regions import RegionSet
from .predictions import editor_frame_rate
from .review_source import ProjectAnnotations

log = logging.getLogger(__name__)

EXTENSIONS = {"coco": "coco.json", "webvtt": "vtt", "json": "json", "eaf": "eaf"}


@dataclass
class ExportSummary:
    tasks: int = 0
    annotations: int = 0
    files: list[Path] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # task id, why

    def line(self) -> str:
        text = f"exported {self.annotations} annotations of {self.tasks} tasks into {len(self.files)} files"
        if self.failed:
            text += f"; {len(self.failed)} tasks failed: " + "; ".join(f"task {t}: {why}" for t, why in self.failed)
        return text


def _render(format_name: str, regions: RegionSet, media: MediaFacts, task_id: int) -> str:
    if format_name == "coco":
        return json.dumps(to_coco(regions, media), indent=2, ensure_ascii=False) + "\n"
    if format_name == "webvtt":
        return to_webvtt(regions, media)
    if format_name == "eaf":
        return to_eaf_text(regions, media)
    return json.dumps(to_document(regions, media, task_id), indent=2, ensure_ascii=False) + "\n"


def media_facts(project: ProjectAnnotations, task_data: dict, task_id: int, service, need_pixels: bool) -> MediaFacts:
    """The file name, the editor's frame rate and, for boxes in pixels, the video's size."""
    source = project.plan.video() or project.plan.audio()
    value = str(task_data.get(source.value_key, "")) if source is not None else ""
    facts = MediaFacts(file_name=Path(value.split("?")[0]).name or f"task-{task_id}")
    video = project.plan.video()
    if video is None:
        return facts
    fps = editor_frame_rate(video, task_data)[0]
    if not need_pixels:
        return MediaFacts(file_name=facts.file_name, fps=fps)
    path = service.fetcher.fetch(value, task_id)
    duration_s, width, height = service.media_extent(path)
    return MediaFacts(file_name=facts.file_name, width=width, height=height, fps=fps,
                      frames_count=max(1, int(round(duration_s * fps))), duration_s=duration_s, path=str(path))


def export_annotations(project: ProjectAnnotations, formats: list[str], out_dir: Path, service,
                       hook: ProgressHook | None = None) -> ExportSummary:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary()
    data = dict(project.task_data)
    index = []
    tasks = [t for t in project.tasks if t.annotations]
    for done, task in enumerate(tasks, start=1):
        try:
            has_tracks = any(a.tracks for a in task.annotations)
            media = media_facts(project, data[task.task_id], task.task_id, service,
                                need_pixels=has_tracks and ("coco" in formats or "eaf" in formats))
            written = []
            for annotation in task.annotations:
                for format_name in formats:
                    target = out_dir / f"task-{task.task_id}_annotation-{annotation.source_id}.{EXTENSIONS[format_name]}"
                    target.write_text(_render(format_name, annotation, media, task.task_id), encoding="utf-8")
                    written.append(target)
        except Exception as exc:  # one bad task never spoils the export of the others
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, OSError)) else str(exc)
            summary.failed.append((task.task_id, reason.splitlines()[0] if reason else type(exc).__name__))
            log.warning("task %s not exported: %s", task.task_id, reason)
        else:
            summary.tasks += 1
            summary.annotations += len(task.annotations)
            summary.files += written
            index.append({"task_id": task.task_id, "media": media.file_name,
                          "annotations": [{"annotation_id": a.source_id, "annotator": a.annotator} for a in
                                          task.annotations],
                          "files": [p.name for p in written]})
        if hook is not None:
            hook("tasks", done, len(tasks))
    summary.failed += list(project.unreadable)
    (out_dir / "index.json").write_text(json.dumps({"project": project.project_id, "title": project.title,
                                                    "tasks": index}, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    return summary
