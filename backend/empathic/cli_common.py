"""What the command-line tools share: the user-facing error, exit codes, argument types, the option
groups several commands take, and turning those options into settings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EXIT_ERROR = 1
DEFAULT_HEAD_CACHE = Path("~/.cache/empathic/heads")
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error with a one-line message."""


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def top_k_value(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 40:
        raise argparse.ArgumentTypeError(f"must be between 1 and 40, got {text}")
    return value


def model_dir_value(text: str) -> tuple[str, Path]:
    repo, sep, path = text.partition("=")
    if not sep or "/" not in repo or not path:
        raise argparse.ArgumentTypeError(f"expected ORG/NAME=FOLDER, got {text!r}")
    return repo, Path(path)


def add_weight_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model weights")
    group.add_argument("--weights-dir", type=Path, default=os.environ.get("EMPATHIC_WEIGHTS_DIR") or None,
                       help="folder with ORG/NAME sub-folders (as `models download --to` writes); "
                            "default $EMPATHIC_WEIGHTS_DIR, else the Hugging Face cache")
    group.add_argument("--model-dir", type=model_dir_value, action="append", default=[], metavar="ORG/NAME=FOLDER",
                       help="use FOLDER for one repository (repeatable)")
    group.add_argument("--offline", action="store_true",
                       help="never download (as HF_HUB_OFFLINE=1)")
    group.add_argument("--verify-weights", action="store_true",
                       help="hash the weight files whose SHA256 LAION's pages publish and refuse any that "
                            "differs (about a second per GB; `models download` always does, unless --no-verify)")


def add_revision_option(parser: argparse.ArgumentParser) -> None:
    """``--revision`` for the commands that load or fetch the registry's models."""
    parser.add_argument("--revision", action="append", default=[], metavar="[ORG/NAME@]REVISION",
                        help="use this revision (branch, tag or commit hash) instead of the registry's pin; "
                             "a bare REVISION is for the Empathic Insight heads of the one model asked "
                             "for, ORG/NAME@REVISION for any repository (backbone, encoder); repeatable")


def revision_choices(args, head_repos):
    """``--revision`` as registry.RevisionChoices; a mistake is one CliError line naming it."""
    from .registry import parse_revision_choices

    try:
        return parse_revision_choices(getattr(args, "revision", []) or [], head_repos)
    except ValueError as exc:
        raise CliError(f"--revision: {exc}") from None


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    runtime.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                         help="model precision; auto = bf16 on a GPU, fp32 (LAION's) on a CPU; bf16 runs "
                              "about 2x faster on CPUs with native bf16 (AVX512_BF16/AMX)")
    runtime.add_argument("--head-precision", choices=["auto", "fp32", "bf16", "fp16", "int8"], default="auto",
                         help="voice heads: auto = as --precision; int8 keeps their first layers in int8, "
                              "a quarter of the fp32 memory (Voice-Small 16.2 GB -> 4.1 GB)")
    runtime.add_argument("--voice-attributes", default="auto", metavar="auto|all|none|ID,ID",
                         help="attribute heads to load beside the 40 emotions (valence, arousal, ...): auto "
                              "= all when -f json or --plot shows them, else none (15 fewer heads in memory)")
    runtime.add_argument("--head-cache", default=os.environ.get("EMPATHIC_HEAD_CACHE", str(DEFAULT_HEAD_CACHE)),
                         metavar="DIR|off", help="keep a stacked copy of the voice heads here, so later "
                                                 "loads map one file (default %(default)s; off: never)")
    runtime.add_argument("--batch-size", type=int, default=None, help="faces or segments per model batch")


def add_detection_options(faces) -> None:
    faces.add_argument("--detector", default="haar",
                       help="haar (default), none (whole frame is the face), or PATH.onnx (YuNet)")
    faces.add_argument("--confidence-threshold", type=float, default=0.5,
                       help="minimum detection confidence, 0..1 (default 0.5)")
    faces.add_argument("--min-face-size", type=int, default=30, help="minimum face side in pixels (default 30)")
    faces.add_argument("--crop-margin", type=float, default=0.2,
                       help="margin around the face in the crop, as a fraction of its size (default 0.2)")
    faces.add_argument("--detect-width", type=int, default=1280,
                       help="frames wider than this are scaled down for detection (default 1280; 0 = never)")
    faces.add_argument("--haar-search", choices=["local", "exhaustive"], default="local",
                       help="haar: local (default) runs the full cascade only where a quick pass proposes "
                            "faces (the same faces, about twice as fast); exhaustive runs it over the whole frame")
    faces.add_argument("--max-faces", type=int, default=None, help="keep the N largest faces per frame")


def weight_sources(args):
    from .hub import WeightSources

    return WeightSources(local_dirs=dict(args.model_dir), weights_root=args.weights_dir,
                         offline=True if args.offline else None,
                         verify_checksums=bool(getattr(args, "verify_weights", False)))


def face_options_from(args, pps: float):
    from .face_analysis import FaceAnalysisOptions
    from .faces.detect import DetectorOptions

    return FaceAnalysisOptions(
        pps=pps, detector=args.detector, crop_margin=args.crop_margin,
        detection=DetectorOptions(confidence_threshold=args.confidence_threshold,
                                  min_face_size=args.min_face_size, detect_width=args.detect_width,
                                  max_faces=args.max_faces, haar_search=args.haar_search))


def face_size_of(args) -> str:
    """--model-size for faces: plus names Voice-Plus, and there is no Face-Plus: faces use Face-Small."""
    return "small" if args.model_size == "plus" else args.model_size


def revisions_of(args, face: bool, voice: bool):
    """--revision, a bare REVISION standing for the head repository of the one model asked for."""
    from .registry import face_model, voice_model

    heads = ([face_model(face_size_of(args)).repo.repo_id] if face else []) + (
        [voice_model(args.model_size).repo.repo_id] if voice else [])
    return revision_choices(args, heads)


def sliding_options_from(args):
    """The live windows from --window, --hop, --min-speech and --vad-threshold."""
    from .segments.sliding import SlidingOptions
    from .segments.vad import VadOptions

    return SlidingOptions(window_s=args.window, hop_s=args.hop, min_speech_s=args.min_speech,
                          vad=VadOptions(threshold=args.vad_threshold))


def load_face_model(args, runtime, revisions):
    from .models.face import FaceEmotionModel

    return FaceEmotionModel.load(face_size_of(args), weight_sources(args), runtime, revisions)


def load_voice_model(args, runtime, attributes, revisions):
    """``attributes``: the attribute heads to load (None: all; see models.voice.attribute_selection)."""
    from .models.head_stack import head_cache_dir
    from .models.voice import VoiceEmotionModel

    return VoiceEmotionModel.load(args.model_size, weight_sources(args), runtime, encoder=args.voice_encoder,
                                  head_precision=args.head_precision, attributes=attributes,
                                  head_cache=head_cache_dir(args.head_cache), revisions=revisions)


def writer_for(fmt: str, kind: str, top_k: int):
    """The export writer of -f ``fmt`` for an analysis of ``kind`` (face, voice, persons)."""
    from .exports.coco import WriteCOCO
    from .exports.eaf import WriteEAF
    from .exports.face_json import WriteFaceJSON
    from .exports.persons_json import WritePersonsJSON
    from .exports.rttm import WriteRTTM
    from .exports.voice_json import WriteVoiceJSON
    from .exports.webvtt import WriteVTT

    if fmt == "coco":
        return WriteCOCO(top_k)
    if fmt == "json":
        return WriteFaceJSON(top_k) if kind == "face" else WriteVoiceJSON()
    if fmt == "webvtt":
        return WriteVTT(top_k)
    if fmt == "persons":
        return WritePersonsJSON(top_k)
    if fmt == "eaf":
        return WriteEAF()
    return WriteRTTM()

