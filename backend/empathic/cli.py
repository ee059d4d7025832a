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

from . import __version__, cli_live
from .cli_common import (
    EXIT_ERROR, CliError, add_detection_options, add_revision_option, add_runtime_options, add_weight_options,
    face_options_from, face_size_of, load_face_model, load_voice_model, positive_float, revision_choices,
    revisions_of, sliding_options_from, top_k_value, weight_sources, writer_for,
)

log = logging.getLogger("empathic")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empathic", description=(
        "Emotion pre-annotation with LAION's Empathic Insight models."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    annotate = commands.add_parser(
        "annotate", help="analyse faces and/or voices in a video, audio or image file",
        description="Analyse faces (video, image) and voices (audio, a video's sound track) and write "
                    "COCO, WebVTT, JSON or RTTM. A video defaults to --face, an audio file to --voice.")
    annotate.add_argument("input", type=Path,
                          help="video (mp4, mov, mkv, webm...), audio (wav, mp3, m4a, flac...) or image")
    annotate.add_argument("--face", action="store_true", help="face emotions (the default for video)")
    annotate.add_argument("--voice", action="store_true", help="voice emotions (the default for audio)")
    annotate.add_argument("--pps", type=positive_float, default=None,
                          help="samples per second: sampled frames for faces (default 1.0), "
                               "segments for fixed voice windows (default 0.2 = 5 s)")
    annotate.add_argument("--model-size", choices=["small", "large", "plus"], default="small",
                          help="Empathic-Insight-{Face,Voice}-Small (default) or -Large; plus: Voice-Plus "
                               "(Voice-Small's heads and 4 audio-quality experts) for voices, Face-Small for faces")
    annotate.add_argument("--top-k", type=top_k_value, default=5,
                          help="emotions written per face or segment (1-40, default 5; voice JSON keeps 40)")
    annotate.add_argument("-f", "--format", choices=["coco", "json", "webvtt", "rttm", "persons", "eaf"],
                          action="append", default=None,
                          help="output format, repeatable (default: coco for faces, webvtt for voices, "
                               "persons with --fuse); json = the full analysis; persons and eaf (ELAN) "
                               "need --fuse")
    annotate.add_argument("-o", "--output", type=Path,
                          help="output file (default: stdout); a folder when several files are written")
    # A flag with a separate format option: an optional value would swallow the input after it
    # (`annotate --plot clip.mp4`).
    annotate.add_argument("--plot", action="store_const", const="both", default=None,
                          help="also draw the analysis: NAME.plot.png and NAME.plot.html beside the other "
                               "outputs (needs -o FOLDER)")
    annotate.add_argument("--plot-format", choices=["png", "html", "both"], default=None,
                          help="with --plot: only the PNG or only the HTML page (default both)")
    annotate.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    faces = annotate.add_argument_group("faces")
    faces.add_argument("--face-pps", type=positive_float, default=None, help="sampled frames per second "
                                                                             "(overrides --pps for faces)")
    add_detection_options(faces)
    voices = annotate.add_argument_group("voices")
    voices.add_argument("--segmentation", choices=["fixed", "vad", "diarization", "scene", "sliding"],
                        default="fixed",
                        help="fixed windows (default), vad (speech regions), diarization (speaker turns), "
                             "scene (fixed windows inside each shot of the video), sliding (the windows of "
                             "`empathic live`: --window s back every --hop s, trimmed to speech)")
    voices.add_argument("--window", type=positive_float, default=10.0,
                        help="sliding: each window reaches this many seconds back (default 10)")
    voices.add_argument("--hop", type=positive_float, default=3.0, help="sliding: a window every N s (default 3)")
    voices.add_argument("--min-speech", type=float, default=0.5,
                        help="sliding: windows with less speech than this (s) are not scored (default 0.5)")
    voices.add_argument("--voice-pps", type=positive_float, default=None,
                        help="fixed windows per second (overrides --pps for voices; default 0.2)")
    voices.add_argument("--segment-overlap", type=float, default=0.0, help="seconds shared by fixed windows")
    voices.add_argument("--min-segment-duration", type=float, default=None,
                        help="shorter segments are dropped (default 1.0 s for windows, 0.5 s for vad "
                             "and diarization)")
    voices.add_argument("--max-segment-duration", type=float, default=30.0,
                        help="longer segments are split into equal parts (default and maximum 30 s, one "
                             "Whisper window)")
    voices.add_argument("--vad-threshold", type=float, default=0.5, help="speech probability (default 0.5)")
    voices.add_argument("--num-speakers", type=int, default=None, help="diarization: known speaker count")
    voices.add_argument("--min-speakers", type=int, default=None, help="diarization: at least N speakers")
    voices.add_argument("--max-speakers", type=int, default=None, help="diarization: at most N speakers")
    voices.add_argument("--diarization-pipeline", default=None, metavar="FOLDER|ORG/NAME",
                        help="pyannote pipeline: a local folder or a hub id (default "
                             "pyannote/speaker-diarization-community-1; gated: set HF_TOKEN)")
    voices.add_argument("--scene-threshold", type=float, default=None,
                        help="scene: content change that counts as a cut")
    voices.add_argument("--voice-encoder", choices=["auto", "emowhisper", "bud-e-whisper"], default="auto",
                        help="Whisper encoder under the voice heads (default auto: the model's own, emowhisper "
                             "under small and large as LAION's code, bud-e-whisper under plus as its card)")
    voices.add_argument("--transcribe", action="store_true", help="add each segment's speech as text")
    voices.add_argument("--asr-model", default=None, metavar="ORG/NAME[@REVISION]",
                        help="speech recognition model for --transcribe (default openai/whisper-small)")
    voices.add_argument("--language", default=None, help="--transcribe language code (default: detected)")
    persons = annotate.add_argument_group("persons (one timeline per person)")
    persons.add_argument("--fuse", action="store_true",
                         help="link each voice segment to the face speaking it and fuse face and voice "
                              "emotions per person (needs --face and --voice on a video with sound)")
    persons.add_argument("--fusion-grid", type=positive_float, default=1.0,
                         help="seconds per cell of the fused timeline (default 1)")
    persons.add_argument("--face-weight", type=float, default=1.0, help="trust in faces, times their quality")
    persons.add_argument("--voice-weight", type=float, default=1.0, help="trust in voices, times their quality")
    persons.add_argument("--min-link-correlation", type=float, default=0.3,
                         help="mouth motion / speech envelope correlation a link needs (default 0.3)")
    persons.add_argument("--min-speaker-face", type=float, default=60.0,
                         help="faces smaller than this (px) are never linked to a voice (default 60)")
    add_runtime_options(annotate)
    add_weight_options(annotate)
    add_revision_option(annotate)

    plot = commands.add_parser(
        "plot", help="draw an analysis: emotions over time per face track and person (PNG or offline HTML)",
        description="Draw the JSON documents `empathic annotate` writes (-f json: NAME.faces.json, "
                    "NAME.voice.json; -f persons: NAME.persons.json), one or several of the same media: the "
                    "top emotions of each face track and person over time, voice segments with their "
                    "speakers, dimensions and valence/arousal, shot cuts. The HTML page is interactive "
                    "(hover a moment for every share) and opens offline.")
    plot.add_argument("inputs", nargs="+", type=Path, metavar="ANALYSIS.json",
                      help="NAME.faces.json, NAME.voice.json and/or NAME.persons.json")
    plot.add_argument("-o", "--output", type=Path, action="append", required=True, metavar="PLOT.png|PLOT.html",
                      help="the figure to write, by its extension (repeatable: -o a.png -o a.html)")
    plot.add_argument("--top", type=top_k_value, default=5,
                      help="emotions drawn per face track or person, by mean share (1-40, default 5)")

    serve = commands.add_parser(
        "serve", help="run the Label Studio ML backend (gunicorn)",
        description="Serve Label Studio's ML-backend protocol. Settings come from environment variables "
                    "(LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, REDIS_URL, ...; see the README).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                          "0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=9090, help="port (default 9090)")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes (default 1: each loads its own models, GPU memory times N)")
    serve.add_argument("--threads", type=int, default=4, help="request threads per process (default 4)")
    serve.add_argument("--log-level", default="info", help="debug, info (default), warning, error")

    worker = commands.add_parser(
        "worker", help="consume background jobs from Redis (REDIS_URL), with the models preloaded",
        description="An RQ worker for the backend's queue. Run one per GPU, on any machine that reaches "
                    "Redis and Label Studio; settings come from the same environment variables as serve.")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    worker.add_argument("--no-preload", action="store_true", help="load models on the first job instead")

    prelabel = commands.add_parser(
        "prelabel", help="predict every task of a Label Studio project and upload the predictions",
        description="Pre-label a whole project: tasks that already hold a prediction of the current "
                    "MODEL_VERSION are skipped, so an interrupted run can simply be started again.")
    _add_project_options(prelabel)
    prelabel.add_argument("--tasks", default="all", help="all (default), unlabeled, or task ids: 3,5,8")
    prelabel.add_argument("--workers", choices=["local", "rq"], default="local",
                          help="local: predict in this process (default); rq: queue a job per task for "
                               "`empathic worker` processes (needs REDIS_URL)")

    agreement = commands.add_parser(
        "agreement", help="how far a project's annotators agree with the model's suggestions",
        description="Compare every annotation of a project with the prediction it corrected: per label "
                    "precision, recall, F1, Cohen's kappa and Krippendorff's alpha over time bins, the "
                    "confusion matrix, and how many suggestions were kept, edited, deleted or added to. "
                    "Writes agreement.json and agreement.html (-o folder).")
    _add_project_options(agreement)
    agreement.add_argument("--model-version", default=None,
                           help="compare the predictions of this model version (default: the project's "
                                "current one, else each task's newest prediction)")
    agreement.add_argument("--bin", type=positive_float, default=1.0, dest="bin_s",
                           help="seconds per time bin, the unit of comparison (default 1)")
    agreement.add_argument("-o", "--output", type=Path, default=Path("."),
                           help="folder for agreement.json and agreement.html (default: here)")

    export = commands.add_parser(
        "export", help="write a project's annotations (the corrected labels) as COCO, WebVTT, JSON or ELAN",
        description="Every annotation of every task, in the formats of the pre-annotations: COCO with a box "
                    "per frame and track (Label Studio's keyframe interpolation), WebVTT cues of the audio "
                    "segments, JSON of every region, ELAN tiers. Files task-<id>_annotation-<id>.<ext> and "
                    "index.json go into the -o folder.")
    _add_project_options(export)
    export.add_argument("-f", "--format", choices=["coco", "webvtt", "json", "eaf"], action="append",
                        default=None, help="output format, repeatable (default json)")
    export.add_argument("-o", "--output", type=Path, required=True, help="folder to write into")

    models = commands.add_parser("models", help="manage model weights")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    download = model_commands.add_parser(
        "download", help="fetch weights ahead of time (for offline, air-gapped and Docker use)")
    download.add_argument("--face", choices=["small", "large"], action="append", default=[])
    download.add_argument("--voice", choices=["small", "large", "plus"], action="append", default=[])
    download.add_argument("--voice-encoder", choices=["auto", "emowhisper", "bud-e-whisper"], default="auto",
                          help="default auto: each voice model's own encoder")
    add_revision_option(download)
    download.add_argument("--no-verify", action="store_true",
                          help="do not check the fetched files against the SHA256 their pages publish")
    download.add_argument("--asr", metavar="ORG/NAME[@REVISION]", nargs="?", const="openai/whisper-small",
                          default=None, help="a speech recognition model for --transcribe "
                                             "(default openai/whisper-small)")
    download.add_argument("--diarization", metavar="ORG/NAME", nargs="?",
                          const="pyannote/speaker-diarization-community-1", default=None,
                          help="a pyannote pipeline (default pyannote/speaker-diarization-community-1; "
                               "gated: accept its conditions on the hub and set HF_TOKEN)")
    download.add_argument("--to", type=Path, default=None,
                          help="write ORG/NAME folders here instead of the Hugging Face cache")
    cli_live.add_parser(commands)
    return parser


def _add_project_options(parser) -> None:
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"),
                        help="Label Studio's address (default $LABEL_STUDIO_URL)")
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                        help="personal access token or legacy token (default $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--project", type=int, required=True, help="project id")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


class _ProgressBars:
    """One tqdm bar on stderr per step of the work (frames, segments, shots...)."""

    UNITS = {"frames": "frame", "segments": "segment", "transcripts": "segment", "shots": "frame", "vad": "%",
             "mouth motion": "frame", "linking": "segment", "fusion": "cell",
             "tasks": "task"}

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict = {}

    def __call__(self, step: str, completed: int, total: int | None) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(step)
        if bar is None:
            from tqdm import tqdm

            bar = self.bars[step] = tqdm(total=total, unit=self.UNITS.get(step, "it"), desc=step,
                                         file=sys.stderr, dynamic_ncols=True)
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = completed
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


FORMAT_TARGETS = {"coco": ("face",), "json": ("face", "voice"), "webvtt": ("voice",), "rttm": ("voice",),
                  "persons": ("persons",), "eaf": ("persons",)}


def _writers(args, analyses) -> list[tuple[str, object, str]]:
    """(file suffix, writer, analysis kind) for every requested format and analysis it applies to."""
    formats = args.format or [f for f, kind in (("coco", "face"), ("webvtt", "voice"), ("persons", "persons"))
                              if kind in analyses]
    chosen = []
    for fmt in dict.fromkeys(formats):
        kinds = [k for k in FORMAT_TARGETS[fmt] if k in analyses]
        if not kinds:
            wanted = FORMAT_TARGETS[fmt][0]
            raise CliError(f"-f {fmt} is for {' or '.join(FORMAT_TARGETS[fmt])} analysis; add "
                           f"--{'fuse' if wanted == 'persons' else wanted}")
        if fmt == "rttm" and args.segmentation != "diarization":
            raise CliError("-f rttm lists speaker turns: it needs --segmentation diarization")
        for kind in kinds:
            writer = writer_for(fmt, kind, args.top_k)
            chosen.append((writer.extension, writer, kind))
    if len(chosen) > 1 and args.output is None:
        raise CliError(f"{len(chosen)} outputs ({', '.join(s for s, _, _ in chosen)}) need -o FOLDER")
    if len(chosen) > 1 and args.output.is_file():
        raise CliError(f"{args.output}: is a file; with several outputs -o names a folder")
    return chosen


def _wanted_analyses(args, probed) -> tuple[bool, bool]:
    from .audio import has_audio

    info = probed[0] if probed is not None else None
    face, voice = args.face, args.voice
    if not face and not voice:
        face, voice = info is not None, info is None
    if face and info is None:
        raise CliError(f"{args.input}: has no video stream or image, so there are no faces to analyse")
    if voice and (info is not None and info.is_image or not has_audio(args.input)):
        raise CliError(f"{args.input}: has no audio stream, so there is no voice to analyse"
                       + ("; leave out --voice" if face else ""))
    return face, voice


def _probe_video(path: Path):
    """(VideoInfo, FrameTimeline) of a video or image; None for an audio-only file."""
    from .media import MediaError, probe

    try:
        return probe(path)
    except MediaError as exc:
        from .audio import has_audio

        if "has no video stream" in str(exc) and has_audio(path):
            return None
        raise


def _voice_attributes(args) -> tuple[str, ...] | None:
    """None: every attribute head; () none; else these. auto: all where an output shows them."""
    from .models.voice import attribute_selection

    if args.voice_attributes.strip() == "auto":
        return None if "json" in (args.format or []) or args.plot else ()
    return attribute_selection(args.voice_attributes)


def _voice_options(args):
    from .segments.diarization import DiarizationOptions
    from .segments.fixed import WindowOptions
    from .segments.scene import ShotOptions
    from .segments.vad import VadOptions
    from .voice_analysis import VoiceAnalysisOptions

    minimum = args.min_segment_duration
    windows = WindowOptions(pps=args.voice_pps or args.pps or 0.2, overlap_s=args.segment_overlap,
                            min_duration_s=1.0 if minimum is None else minimum,
                            max_duration_s=args.max_segment_duration)
    vad = VadOptions(threshold=args.vad_threshold, min_duration_s=0.5 if minimum is None else minimum,
                     max_duration_s=args.max_segment_duration)
    extra = {"pipeline": args.diarization_pipeline} if args.diarization_pipeline else {}
    diarization = DiarizationOptions(
        num_speakers=args.num_speakers, min_speakers=args.min_speakers, max_speakers=args.max_speakers,
        min_duration_s=0.5 if minimum is None else minimum, max_duration_s=args.max_segment_duration, **extra)
    shots = ShotOptions(**({} if args.scene_threshold is None else {"threshold": args.scene_threshold}))
    return VoiceAnalysisOptions(segmentation=args.segmentation, windows=windows, vad=vad, diarization=diarization,
                                shots=shots, sliding=sliding_options_from(args))


def _annotate(args) -> int:
    from .faces.detect import make_detector
    from .models.runtime import make_runtime

    probed = _probe_video(args.input)
    face, voice = _wanted_analyses(args, probed)
    if args.fuse and not (face and voice):
        raise CliError(f"--fuse links voices to faces: it needs both --face and --voice (on {args.input}, "
                       f"{'faces' if face else 'voices'} only were asked for)")
    if args.fuse and probed is not None and probed[0].is_image:
        raise CliError(f"{args.input}: is an image; --fuse needs a video with sound")
    fusion = _fusion_settings(args) if args.fuse else None
    args.revisions = revisions_of(args, face, voice)
    writers = _writers(args, {kind for kind, wanted in (("face", face), ("voice", voice), ("persons", args.fuse))
                              if wanted})
    if args.plot_format and not args.plot:
        raise CliError("--plot-format goes with --plot")
    args.plot = args.plot and (args.plot_format or args.plot)
    if args.plot and (args.output is None or args.output.is_file()):
        raise CliError(f"--plot writes NAME.plot.{'png and .html' if args.plot == 'both' else args.plot} beside "
                       f"the other outputs: it needs -o FOLDER"
                       + (f" ({args.output} is a file)" if args.output is not None else ""))
    # Every setting, the media and the device are checked before any model is loaded.
    runtime = make_runtime(args.device, args.precision, args.batch_size)
    face_options = detector = voice_options = audio = segmenter = None
    if face:
        face_options = face_options_from(args, args.face_pps or args.pps or 1.0)
        detector = make_detector(face_options.detector, face_options.detection)
    progress = _ProgressBars(not args.quiet)
    if voice:
        voice_options = _voice_options(args)
        if voice_options.segmentation == "scene" and (probed is None or probed[0].is_image):
            raise CliError(f"{args.input}: scene segmentation needs a video")
    # Every model the run needs is found (or fetched) before any decoding: a missing one is named
    # with all the others in one error, not discovered after the faces of an hour-long video.
    _require_models(args, face, voice_options)
    if voice:
        from .audio import decode_audio
        from .voice_analysis import make_segmenter

        audio = decode_audio(args.input)
        segmenter = make_segmenter(voice_options, args.input, sources=weight_sources(args),
                                   device=str(runtime.device), hook=progress)
    analyses: dict = {}
    try:
        if face:
            from .face_analysis import analyze_faces

            model = load_face_model(args, runtime, args.revisions)
            analyses["face"] = analyze_faces(args.input, model, face_options, hook=progress,
                                             probed=probed, detector=detector)
            if not analyses["face"].faces:
                log.warning("no face found in %s (%d sampled frames)", args.input,
                            len(analyses["face"].frames))
            del model
        if voice:
            from .voice_analysis import analyze_voice

            transcriber = None
            if args.transcribe:
                from .models.asr import DEFAULT_ASR_MODEL, Transcriber

                transcriber = Transcriber.load(args.asr_model or DEFAULT_ASR_MODEL, weight_sources(args), runtime,
                                               language=args.language)
            model = load_voice_model(args, runtime, _voice_attributes(args), args.revisions)
            analyses["voice"] = analyze_voice(args.input, model, voice_options, hook=progress, audio=audio,
                                              segmenter=segmenter, transcriber=transcriber)
            if not analyses["voice"].segments:
                log.warning("no voice segment in %s (%.1f s of audio, segmentation %s)", args.input,
                            audio.duration_s, voice_options.segmentation)
            del model
        if fusion is not None:
            analyses["persons"] = _persons(args, analyses, audio, probed, fusion, progress)
    finally:
        progress.close()
    persons = analyses.get("persons")
    rendered = []
    for suffix, writer, kind in writers:
        if kind in ("face", "voice") and suffix in ("coco.json", "vtt"):
            rendered.append((suffix, writer.render(analyses[kind], persons=persons)))
        else:
            rendered.append((suffix, writer.render(analyses[kind])))
    _write_outputs(args, rendered)
    if args.plot:
        _write_plots(args, analyses)
    return 0


def _write_plots(args, analyses) -> None:
    """The plot of the documents the JSON exports hold, with all 40 emotions: the figure that
    `empathic plot` draws from files written with `-f json -f persons --top-k 40`."""
    from .exports.persons_json import persons_document
    from .plots.series import plot_data

    stem = args.input.stem
    documents = {}
    if "face" in analyses:
        documents[f"{stem}.faces.json"] = analyses["face"].to_dict()
    if "voice" in analyses:
        documents[f"{stem}.voice.json"] = analyses["voice"].to_dict()
    if "persons" in analyses:
        documents[f"{stem}.persons.json"] = persons_document(analyses["persons"], None)
    data = plot_data(documents)
    for extension in ("png", "html") if args.plot == "both" else (args.plot,):
        _write_figure(data, args.output / f"{stem}.plot.{extension}")


def _write_figure(data, target: Path) -> None:
    if target.suffix.lower() == ".png":
        from .plots.png import figure, png_bytes

        content = png_bytes(figure(data))
    else:
        from .plots.html import figure, page

        content = page(figure(data)).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    log.info("wrote %s", target)


def _plot(args) -> int:
    import json

    from .plots.series import plot_data

    for target in args.output:
        if target.suffix.lower() not in (".png", ".html"):
            raise CliError(f"{target}: a plot is written as .png or .html")
    documents = {}
    for path in args.inputs:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        try:
            documents[str(path)] = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CliError(f"{path}: not JSON ({exc})") from None
    data = plot_data(documents, top=args.top)
    for target in args.output:
        _write_figure(data, target)
    return 0


def _fusion_settings(args):
    from .persons.evidence import EvidenceOptions
    from .persons.fusion import FusionOptions
    from .persons.linking import make_linker

    return (EvidenceOptions(min_face_px=args.min_speaker_face),
            make_linker("synchrony", min_correlation=args.min_link_correlation),
            FusionOptions(grid_s=args.fusion_grid, face_weight=args.face_weight, voice_weight=args.voice_weight))


def _persons(args, analyses, audio, probed, fusion, progress):
    """Shots (found once: the scene segmentation's, or detected now), the audio-visual evidence,
    then linking and fusion."""
    from .persons.analysis import analyze_persons
    from .persons.evidence import gather_evidence
    from .segments.scene import ShotOptions, detect_shots

    evidence_options, linker, fusion_options = fusion
    face, voice = analyses["face"], analyses["voice"]
    shots = voice.shots_s
    if not shots:
        shot_options = ShotOptions(**({} if args.scene_threshold is None else {"threshold": args.scene_threshold}))
        shots = tuple(detect_shots(args.input, shot_options, hook=progress))
    evidence = gather_evidence(args.input, face, voice, audio, evidence_options, probed=probed, hook=progress)
    return analyze_persons(face, voice, evidence, linker, fusion_options, shots_s=shots, hook=progress)


def _require_models(args, face: bool, voice_options) -> None:
    from .hub import resolve_needs
    from .models.face import FaceEmotionModel
    from .models.voice import VoiceEmotionModel

    needs = FaceEmotionModel.needs(face_size_of(args), args.revisions) if face else ()
    if voice_options is not None:
        needs += VoiceEmotionModel.needs(args.model_size, args.voice_encoder, args.revisions)
        if args.transcribe:
            from .models.asr import DEFAULT_ASR_MODEL, asr_needs

            needs += asr_needs(args.asr_model or DEFAULT_ASR_MODEL)
        if voice_options.segmentation == "diarization":
            from .segments.diarization import diarization_needs

            needs += diarization_needs(voice_options.diarization)
    resolve_needs(needs, weight_sources(args))


def _write_outputs(args, rendered: list[tuple[str, str]]) -> None:
    # with --plot there are always several outputs: -o is the folder
    if len(rendered) == 1 and not args.plot and (args.output is None or not args.output.is_dir()):
        text = rendered[0][1]
        if args.output is None:
            sys.stdout.write(text)
            return
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        log.info("wrote %s", args.output)
        return
    args.output.mkdir(parents=True, exist_ok=True)
    for suffix, text in rendered:
        target = args.output / f"{args.input.stem}.{suffix}"
        target.write_text(text, encoding="utf-8")
        log.info("wrote %s", target)


def _serve(args) -> int:
    from gunicorn.app.base import BaseApplication

    from .labelstudio.settings import BackendSettings

    BackendSettings.from_env()  # a bad setting fails here, in one line, not inside a worker
    options = {"bind": f"{args.host}:{args.port}", "workers": args.workers, "threads": args.threads,
               # Predictions of long media take long: Label Studio's own timeout governs.
               "timeout": 0, "loglevel": args.log_level, "control_socket_disable": True,
               "accesslog": "-", "errorlog": "-"}

    class Server(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            os.environ.setdefault("LOG_LEVEL", args.log_level.upper())
            from .labelstudio.wsgi import app

            return app

    Server().run()
    return 0


def _worker(args) -> int:
    from .labelstudio.backend import default_service

    service = default_service()
    if not service.settings.redis_url:
        raise CliError("a worker needs REDIS_URL (the queue lives in Redis)")
    if args.no_preload:
        service.check_models()
    else:
        service.preload()
    _work_through_outages(service.settings, args)
    return 0


def _work_through_outages(settings, args) -> None:
    """Run the RQ worker; when Redis goes away (RQ's worker then quits), start it again once Redis
    answers, so that a Redis restart needs no worker restart. The models stay loaded throughout."""
    import time

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from .labelstudio.cache import redact_url
    from .labelstudio.jobs import make_worker

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()) if args.debug else "INFO"
    wait = 1.0
    while True:
        worker = None
        started = time.monotonic()
        try:
            worker = make_worker(settings)  # registers with Redis: it fails too while Redis is down
            worker.work(burst=args.burst, logging_level=level)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if args.burst:  # one pass over the queue was asked for: say why it cannot be made
                raise CliError(f"Redis at {redact_url(settings.redis_url)} is unreachable: {exc}") from None
            log.warning("Redis unreachable (%s); the worker tries again in %g s", exc, wait)
        else:
            # RQ notes a SIGTERM or Ctrl-C in _shutdown_requested_date (a job in hand: _stop_requested)
            if args.burst or getattr(worker, "_shutdown_requested_date", None) or getattr(worker, "_stop_requested",
                                                                                        False):
                return
            log.warning("the worker stopped without being asked to (Redis unreachable?); it starts again in %g s",
                        wait)
        wait = 1.0 if time.monotonic() - started > 60 else wait  # a new outage starts with short waits
        time.sleep(wait)
        wait = min(2 * wait, 30.0)


def _label_studio(args):
    """(settings, API client) for a command that talks to Label Studio."""
    from .labelstudio.label_studio_api import LabelStudioApi
    from .labelstudio.media_fetch import LabelStudioAccess
    from .labelstudio.settings import BackendSettings

    if not args.url:
        raise CliError("the Label Studio URL is needed: --url or LABEL_STUDIO_URL")
    if not args.api_key:
        raise CliError("an API key is needed: --api-key or LABEL_STUDIO_API_KEY")
    settings = BackendSettings.from_env().model_copy(update={"label_studio_url": args.url.rstrip("/"),
                                                             "label_studio_api_key": args.api_key})
    access = LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key)
    return settings, LabelStudioApi(access)


def _prelabel(args) -> int:
    from .labelstudio.prelabel import prelabel
    from .labelstudio.service import AnalysisService

    settings, api = _label_studio(args)
    progress = _ProgressBars(not args.quiet)
    try:
        summary = prelabel(api, args.project, AnalysisService(settings), args.tasks, hook=progress,
                           workers=args.workers)
    finally:
        progress.close()
    print(summary.line())
    return 0 if not summary.failed else EXIT_ERROR


def _read_project(args, api):
    from .labelstudio.review_source import read_project

    progress = _ProgressBars(not args.quiet)
    try:
        return read_project(api, args.project, getattr(args, "model_version", None), hook=progress)
    finally:
        progress.close()


def _agreement(args) -> int:
    from .exports.agreement_report import report_html, report_json
    from .review.agreement import AgreementOptions, agreement

    _, api = _label_studio(args)
    project = _read_project(args, api)
    report = agreement(list(project.tasks), AgreementOptions(bin_s=args.bin_s))
    if not report.tasks_compared:
        raise CliError(f"project {args.project} has no task with both an annotation and a prediction"
                       + (f" of model version {project.model_version}" if project.model_version else ""))
    header = {"project": project.project_id, "project_title": project.title, "model_version": project.model_version,
              "unreadable_tasks": [{"task_id": t, "reason": why} for t, why in project.unreadable]}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "agreement.json").write_text(report_json(report, header), encoding="utf-8")
    (args.output / "agreement.html").write_text(report_html(report, header), encoding="utf-8")
    outcomes = report.outcomes
    print(f"{report.tasks_compared} tasks, {report.annotations_compared} annotations: {outcomes.suggested} "
          f"suggestions, {outcomes.kept} kept, {outcomes.edited} edited, {outcomes.deleted} deleted, "
          f"{outcomes.added} regions added; wrote {args.output / 'agreement.json'} and agreement.html")
    return 0


def _export(args) -> int:
    from .labelstudio.annotation_export import export_annotations
    from .labelstudio.service import AnalysisService

    settings, api = _label_studio(args)
    project = _read_project(args, api)
    progress = _ProgressBars(not args.quiet)
    try:
        summary = export_annotations(project, list(dict.fromkeys(args.format or ["json"])), args.output,
                                     AnalysisService(settings), hook=progress)
    finally:
        progress.close()
    print(summary.line())
    return 0 if not summary.failed else EXIT_ERROR


def _download(args) -> int:
    from .hub import WeightSources, download_needs
    from .models.face import FaceEmotionModel
    from .models.voice import VoiceEmotionModel
    from .registry import face_model, voice_model

    if not (args.face or args.voice or args.asr or args.diarization):
        raise CliError("name what to download: --face small|large, --voice small|large|plus, --asr, --diarization")
    revisions = revision_choices(args, [face_model(s).repo.repo_id for s in args.face]
                                 + [voice_model(s).repo.repo_id for s in args.voice])
    needs: tuple = ()
    for size in args.face:
        needs += FaceEmotionModel.needs(size, revisions)
    for size in args.voice:
        needs += VoiceEmotionModel.needs(size, args.voice_encoder, revisions)
    if args.asr:
        from .models.asr import asr_needs

        needs += asr_needs(args.asr)
    if args.diarization:
        from .segments.diarization import DiarizationOptions, diarization_needs

        needs += diarization_needs(DiarizationOptions(pipeline=args.diarization))  # config.yaml and its sub-models
    for repo in download_needs(needs, WeightSources(verify_checksums=not args.no_verify), to=args.to):
        print(repo.path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="empathic: %(levelname)s: %(message)s", stream=sys.stderr)
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    handlers = {"annotate": _annotate, "plot": _plot, "models": _download, "serve": _serve, "prelabel": _prelabel,
                "worker": _worker, "agreement": _agreement, "export": _export,
                "live": cli_live.run}
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
                 "ValueError", "FileNotFoundError", "SettingsError", "LabelStudioApiError", "MediaFetchError",
                 "DocumentError", "WeightChecksumError")
        prefix = "" if type(exc).__name__ in known else f"{type(exc).__name__}: "
        print(f"empathic: error: {prefix}{message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
