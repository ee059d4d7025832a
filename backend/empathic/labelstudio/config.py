"""What a labeling config asks for: which media objects to analyse and which controls to fill.

Supported: ``<Video>`` with ``<VideoRectangle>`` (+ ``<Labels>``) face tracks, per-region ``<Choices>``
and ``<TimelineLabels>``; ``<Audio>`` (also ``value="$video"``) with ``<Labels>`` segments and
per-region ``<Choices>``, ``<Taxonomy>``, ``<Number>`` and ``<TextArea>``. Per-control settings are
``model_*`` attributes: ``model_threshold``, ``model_top_k``, ``model_pps``, ``model_segmentation``,
``model_size`` (small, large; plus on an Audio: Voice-Plus), ``model_attribute`` on a Number (else its
name is matched: valence, arousal..., or a Voice-Plus quality expert: speech_quality...), and
``model_source="fused"`` on a TimelineLabels (per-person segments of the fused face and voice
emotions, where the config has a Video and an Audio of the same media; default ``face``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from ..taxonomy import FACE_DIMENSIONS, VOICE_ATTRIBUTES, VOICE_QUALITY_EXPERTS
from .mapping import (DEFAULT_THRESHOLD, ConfigError, LabelMapping, UnmappableConfigError, map_labels, normalise,
                      usable_names)

SEGMENTATIONS = ("fixed", "vad", "diarization", "scene")
MODEL_SIZES = {"video": ("small", "large"), "audio": ("small", "large", "plus")}  # Voice-Plus has no face twin
SOURCES = ("face", "fused")
__all__ = ["ConfigError", "ControlPlan", "ControlSettings", "ObjectPlan", "ProjectPlan", "parse_config"]


@dataclass(frozen=True)
class ControlSettings:
    threshold: float = DEFAULT_THRESHOLD
    top_k: int = 1
    pps: float | None = None
    segmentation: str | None = None
    model_size: str | None = None
    source: str = "face"  # TimelineLabels: face tracks' emotions, or the persons' fused ones


@dataclass(frozen=True)
class ControlPlan:
    name: str
    type: str  # the result type: videorectangle, choices, timelinelabels, labels, taxonomy, number, textarea
    to_name: str
    settings: ControlSettings
    mapping: LabelMapping | None = None  # for label-bearing controls
    per_region: bool = False
    labels: tuple[str, ...] = ()  # every label/choice value, in config order
    attribute: str | None = None  # Number: the dimension, attribute or quality expert it shows
    taxonomy_paths: tuple[tuple[str, ...], ...] = ()  # Taxonomy: root-to-node path of every node
    number_range: tuple[float | None, float | None] = (None, None)


@dataclass(frozen=True)
class ObjectPlan:
    name: str
    type: str  # "video" or "audio"
    value_key: str  # the task data field
    frame_rate: str | None = None  # Video: a literal or "$field"
    controls: tuple[ControlPlan, ...] = field(default=())

    def control(self, type_: str, per_region: bool | None = None) -> ControlPlan | None:
        return next((c for c in self.controls if c.type == type_
                     and (per_region is None or c.per_region == per_region)), None)


@dataclass(frozen=True)
class ProjectPlan:
    objects: tuple[ObjectPlan, ...]

    def video(self) -> ObjectPlan | None:
        return next((o for o in self.objects if o.type == "video"), None)

    def audio(self) -> ObjectPlan | None:
        return next((o for o in self.objects if o.type == "audio"), None)

    def links_persons(self) -> bool:
        """Faces and voices of the same media: voice segments can be linked to face tracks."""
        video, audio = self.video(), self.audio()
        return (video is not None and audio is not None and video.value_key == audio.value_key
                and video.control("videorectangle") is not None)


def _settings(attributes: dict[str, str], name: str) -> ControlSettings:
    def number(key, cast):
        if key not in attributes:
            return None
        try:
            return cast(attributes[key])
        except ValueError:
            raise ConfigError(f"{name}: {key}={attributes[key]!r} is not a number") from None

    threshold = number("model_threshold", float)
    top_k = number("model_top_k", int)
    pps = number("model_pps", float)
    segmentation = attributes.get("model_segmentation")
    if segmentation is not None and segmentation not in SEGMENTATIONS:
        raise ConfigError(f"{name}: model_segmentation={segmentation!r}; use one of {', '.join(SEGMENTATIONS)}")
    size = attributes.get("model_size")
    if size is not None and size not in MODEL_SIZES["audio"]:
        raise ConfigError(f"{name}: model_size={size!r}; use small, large or (on an Audio) plus")
    if top_k is not None and not 1 <= top_k <= 40:
        raise ConfigError(f"{name}: model_top_k must be between 1 and 40, got {top_k}")
    if pps is not None and not pps > 0:
        raise ConfigError(f"{name}: model_pps must be > 0, got {pps}")
    source = attributes.get("model_source", "face")
    if source not in SOURCES:
        raise ConfigError(f"{name}: model_source={source!r}; use one of {', '.join(SOURCES)}")
    single = attributes.get("choice", "single") == "single"
    return ControlSettings(threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
                           top_k=top_k or (1 if single else 3), pps=pps, segmentation=segmentation,
                           model_size=size, source=source)


def _taxonomy_paths(element: ElementTree.Element) -> tuple[tuple[str, ...], ...]:
    paths: list[tuple[str, ...]] = []

    def walk(node, prefix):
        for child in node:
            if child.tag == "Choice" and child.get("value"):
                path = prefix + (child.get("value"),)
                paths.append(path)
                walk(child, path)

    walk(element, ())
    return tuple(paths)


def _attribute_for(name: str, attributes: dict[str, str]) -> str | None:
    wanted = normalise(attributes.get("model_attribute") or name)
    for dimension in VOICE_ATTRIBUTES + FACE_DIMENSIONS + VOICE_QUALITY_EXPERTS:
        if wanted in (dimension.id, normalise(dimension.name), normalise(dimension.file_key)):
            return dimension.id
    return None


def parse_config(label_config: str) -> ProjectPlan:
    """The plan for a labeling config; ConfigError where nothing in it can be predicted."""
    try:
        root = ElementTree.fromstring(label_config)
    except ElementTree.ParseError as exc:
        raise ConfigError(f"the labeling config is not valid XML ({exc})") from None
    objects: dict[str, dict] = {}
    for element in root.iter():
        if element.tag in ("Video", "Audio") and element.get("name") and (element.get("value") or "").startswith("$"):
            objects[element.get("name")] = {"type": element.tag.lower(), "value_key": element.get("value")[1:],
                                            "frame_rate": element.get("frameRate"), "controls": []}
    if not objects:
        raise ConfigError("the labeling config has no <Video> or <Audio> object with value=\"$field\"")
    errors: list[str] = []
    for element in root.iter():
        to_name = element.get("toName")
        if to_name not in objects:
            continue
        attributes = dict(element.attrib)
        name = element.get("name", element.tag)
        settings = _settings(attributes, name)
        per_region = attributes.get("perRegion", "false").lower() == "true"
        kind = objects[to_name]["type"]
        if settings.model_size is not None and settings.model_size not in MODEL_SIZES[kind]:
            raise ConfigError(f"{name}: model_size={settings.model_size!r} is for an Audio (Voice-Plus); on a "
                              f"{kind.capitalize()} use {' or '.join(MODEL_SIZES[kind])}")
        labels = {c.get("value"): dict(c.attrib) for c in element.iter()
                  if c is not element and c.tag in ("Label", "Choice") and c.get("value")}
        tag = element.tag
        plan = None
        if tag == "VideoRectangle" and kind == "video":
            plan = ControlPlan(name, "videorectangle", to_name, settings)
        elif tag in ("Labels", "Choices", "TimelineLabels", "Taxonomy"):
            if tag == "TimelineLabels" and kind != "video":
                continue
            mapping = map_labels(name, labels)
            type_ = tag.lower()
            if tag == "Labels" and kind == "video":
                type_ = "labels"  # the face track's own label (Face, or the dominant emotion)
            plan = ControlPlan(name, type_, to_name, settings, mapping, per_region, tuple(labels),
                               taxonomy_paths=_taxonomy_paths(element) if tag == "Taxonomy" else ())
            if not mapping.targets and not (tag == "Labels" and kind == "video"):
                errors.append(f"{name} ({', '.join(repr(v) for v in list(labels)[:6]) or 'no labels'})")
                continue
        elif tag == "Number" and per_region:
            attribute = _attribute_for(name, attributes)
            if attribute is None:
                continue
            low, high = attributes.get("min"), attributes.get("max")
            plan = ControlPlan(name, "number", to_name, settings, per_region=True, attribute=attribute,
                               number_range=(float(low) if low else None, float(high) if high else None))
        elif tag == "TextArea" and per_region and kind == "audio":
            plan = ControlPlan(name, "textarea", to_name, settings, per_region=True)
        if plan is not None:
            objects[to_name]["controls"].append(plan)
    plans = tuple(ObjectPlan(name, o["type"], o["value_key"], o["frame_rate"], tuple(o["controls"]))
                  for name, o in objects.items() if _fillable(o["type"], o["controls"]))
    if not plans:
        detail = f"no label of {'; '.join(errors)} maps onto LAION's emotions; " if errors else ""
        raise UnmappableConfigError(
            f"nothing in the labeling config can be predicted: {detail}use a <VideoRectangle> on a <Video>, "
            f"a <TimelineLabels> or per-region <Choices> with emotion labels, or <Labels> on an <Audio>; "
            f"labels may be {usable_names()}")
    return ProjectPlan(plans)


def _fillable(kind: str, controls: list[ControlPlan]) -> bool:
    types = {c.type for c in controls if c.mapping is None or c.mapping.targets or c.type == "videorectangle"}
    if kind == "video":
        return bool(types & {"videorectangle", "timelinelabels"})
    return any(c.type == "labels" and c.mapping and c.mapping.targets for c in controls)
