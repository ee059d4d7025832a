"""The ``empathic`` command: annotate media, manage model weights.

Errors end in one line on stderr (``empathic: error: ...``) and a non-zero exit; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__

log = logging.getLogger("empathic")

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error with a one-line message."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _top_k(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 40:
        raise argparse.ArgumentTypeError(f"must be between 1 and 40, got {text}")
    return value


def _model_dir(text: str) -> tuple[str, Path]:
    repo, sep, path = text.partition("=")
    if not sep or "/" not in repo or not path:
        raise argparse.ArgumentTypeError(f"expected ORG/NAME=FOLDER, got {text!r}")
    return repo, Path(path)


def _add_weight_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model weights")
    group.add_argument("--weights-dir", type=Path, default=os.environ.get("EMPATHIC_WEIGHTS_DIR") or None,
                       help="folder with ORG/NAME sub-folders (as `models download --to` writes); "
                            "default $EMPATHIC_WEIGHTS_DIR, else the Hugging Face cache")
    group.add_argument("--model-dir", type=_model_dir, action="append", default=[], metavar="ORG/NAME=FOLDER",
                       help="use FOLDER for one repository (repeatable)")
    group.add_argument("--offline", action="store_true",
                       help="never download (as HF_HUB_OFFLINE=1)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empathic", description=(
        "Emotion pre-annotation with LAION's Empathic Insight models."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    annotate = commands.add_parser("annotate", help="analyse a video or image file",
                                   description="Analyse faces in a video (or image) and print or write COCO.")
    annotate.add_argument("input", type=Path, help="video (mp4, mov, mkv, webm, avi...) or image (jpg, png...)")
    annotate.add_argument("--face", action="store_true", help="face emotions (the default for video)")
    annotate.add_argument("--pps", type=_positive_float, default=1.0,
                          help="sampled frames per second of video (default 1.0)")
    annotate.add_argument("--model-size", choices=["small", "large"], default="small",
                          help="Empathic-Insight-Face-Small (40 emotions + 4 dimensions) or -Large (40)")
    annotate.add_argument("--detector", default="haar",
                          help="haar (default), none (whole frame is the face), or PATH.onnx (YuNet)")
    annotate.add_argument("--confidence-threshold", type=float, default=0.5,
                          help="minimum detection confidence, 0..1 (default 0.5)")
    annotate.add_argument("--min-face-size", type=int, default=30, help="minimum face side in pixels (default 30)")
    annotate.add_argument("--crop-margin", type=float, default=0.2,
                          help="margin around the face in the crop, as a fraction of its size (default 0.2)")
    annotate.add_argument("--detect-width", type=int, default=1280,
                          help="frames wider than this are scaled down for detection (default 1280; 0 = never)")
    annotate.add_argument("--max-faces", type=int, default=None, help="keep the N largest faces per frame")
    annotate.add_argument("--top-k", type=_top_k, default=5, help="emotions written per face (1-40, default 5)")
    annotate.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    annotate.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                          help="backbone precision; auto = bf16 on GPU, fp32 on CPU")
    annotate.add_argument("--batch-size", type=int, default=None, help="faces per model batch")
    annotate.add_argument("-f", "--format", choices=["coco"], default="coco", help="output format")
    annotate.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    annotate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_weight_options(annotate)

    models = commands.add_parser("models", help="manage model weights")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    download = model_commands.add_parser(
        "download", help="fetch weights ahead of time (for offline, air-gapped and Docker use)")
    download.add_argument("--face", choices=["small", "large"], action="append", default=[])
    download.add_argument("--voice", choices=["small", "large"], action="append", default=[])
    download.add_argument("--voice-encoder", choices=["emowhisper", "bud-e-whisper"], default="emowhisper")
    download.add_argument("--to", type=Path, default=None,
                          help="write ORG/NAME folders here instead of the Hugging Face cache")
    return parser


def _sources(args):
    from .hub import WeightSources

    return WeightSources(local_dirs=dict(args.model_dir), weights_root=args.weights_dir,
                         offline=True if args.offline else None)


def _progress_hook(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=None, unit="frame", desc="faces", file=sys.stderr, dynamic_ncols=True)

    def hook(step: str, completed: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.n = completed
        bar.refresh()

    return hook, bar.close


def _annotate(args) -> int:
    from .face_analysis import FaceAnalysisOptions, analyze_faces
    from .exports.coco import WriteCOCO
    from .faces.detect import DetectorOptions, make_detector
    from .media import probe
    from .models.face import FaceEmotionModel
    from .models.runtime import make_runtime

    if args.output is not None and args.output.is_dir():
        raise CliError(f"{args.output}: is a folder; -o names the output file")
    options = FaceAnalysisOptions(
        pps=args.pps, detector=args.detector, crop_margin=args.crop_margin,
        detection=DetectorOptions(confidence_threshold=args.confidence_threshold,
                                  min_face_size=args.min_face_size, detect_width=args.detect_width,
                                  max_faces=args.max_faces))
    # Bad media, detector or device settings fail here, before any model is loaded.
    probed = probe(args.input)
    detector = make_detector(options.detector, options.detection)
    runtime = make_runtime(args.device, args.precision, args.batch_size)
    model = FaceEmotionModel.load(args.model_size, _sources(args), runtime)
    hook, close = _progress_hook(not args.quiet)
    try:
        analysis = analyze_faces(args.input, model, options, hook=hook, probed=probed, detector=detector)
    finally:
        close()
    if not analysis.faces:
        log.warning("no face found in %s (%d sampled frames)", args.input, len(analysis.frames))
    text = WriteCOCO(args.top_k).render(analysis)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        log.info("wrote %s", args.output)
    return 0


def _download(args) -> int:
    from .hub import download_repos
    from .registry import BACKBONE_PATTERNS, VOICE_ENCODERS, face_model, voice_model

    if not args.face and not args.voice:
        raise CliError("name what to download: --face small|large and/or --voice small|large")
    wanted: dict = {}
    for size in args.face:
        spec = face_model(size)
        wanted[spec.repo] = spec.download_patterns()
        wanted[spec.backbone] = BACKBONE_PATTERNS
    for size in args.voice:
        spec = voice_model(size)
        wanted[spec.repo] = spec.download_patterns()
        wanted[VOICE_ENCODERS[args.voice_encoder]] = BACKBONE_PATTERNS
    from .hub import WeightSources

    for path in download_repos(wanted, WeightSources(), to=args.to):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="empathic: %(levelname)s: %(message)s", stream=sys.stderr)
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    handlers = {"annotate": _annotate, "models": _download}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("empathic: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback only on request
        if args.debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        known = ("CliError", "MediaError", "MissingWeightsError", "HeadFormatError", "NeutralStatsError",
                 "ValueError", "FileNotFoundError")
        prefix = "" if type(exc).__name__ in known else f"{type(exc).__name__}: "
        print(f"empathic: error: {prefix}{message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
