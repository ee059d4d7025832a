"""``empathic live``: faces and voices of a camera or a stream as it plays.

JSON Lines on stdout (or ``--events FILE``) as results come; at the end (end of stream, Ctrl-C, or the
stream dropping) the session's documents in ``-o DIR`` and one summary line on stderr. Exit status 0
when the stream ended or was stopped, 1 when it dropped (the documents are still written).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from . import cli_common as common

log = logging.getLogger("empathic")

LIVE_FORMATS = {"coco": "face", "json": None, "webvtt": "voice"}


def add_parser(commands) -> None:
    live = commands.add_parser(
        "live", help="emotions from a camera or a stream as it happens (JSON Lines), then the session's files",
        description="Analyse a live input while it plays: a camera (/dev/video0), rtsp://, srt://, udp://, "
                    "rtmp://, an HTTP MPEG-TS or HLS stream, or a file with --realtime. One JSON line per face "
                    "sample and per voice window is printed as it is made; when the stream ends or on Ctrl-C "
                    "the whole session is written as annotate writes a recording (COCO, WebVTT, JSON). When "
                    "the models are slower than the stream, samples are skipped (and counted), never queued, "
                    "so latency stays bounded.")
    live.add_argument("source", help="/dev/videoN, rtsp://..., srt://..., udp://@:PORT, http(s)://..., or a file "
                                     "with --realtime")
    live.add_argument("--face", action="store_true", help="face emotions (default: when the stream has video)")
    live.add_argument("--voice", action="store_true", help="voice emotions (default: when it has sound)")
    live.add_argument("--pps", type=common.positive_float, default=2.0,
                      help="face samples per second of the stream's clock (default 2)")
    live.add_argument("--window", type=common.positive_float, default=10.0,
                      help="voice: each window reaches this many seconds back (default 10, at most 30)")
    live.add_argument("--hop", type=common.positive_float, default=3.0, help="voice: a window every N s (default 3)")
    live.add_argument("--min-speech", type=float, default=0.5,
                      help="voice: a window with less speech than this (s, by silero-vad) is not scored (default 0.5)")
    live.add_argument("--vad-threshold", type=float, default=0.5, help="voice: speech probability (default 0.5)")
    live.add_argument("--realtime", action="store_true", help="play a file at its own rate (to try without a camera)")
    live.add_argument("--open-timeout", type=common.positive_float, default=10.0,
                      help="seconds to wait for the stream to open (default 10)")
    live.add_argument("--read-timeout", type=common.positive_float, default=10.0,
                      help="seconds without data after which the stream counts as dropped (default 10)")
    live.add_argument("--events", default="-", metavar="FILE|-", help="where the JSON lines go (default - : stdout)")
    live.add_argument("-o", "--output", type=Path, default=None, help="folder for the session's documents")
    live.add_argument("-f", "--format", choices=sorted(LIVE_FORMATS), action="append", default=None,
                      help="documents written at the end, repeatable (default coco for faces, webvtt for voices)")
    live.add_argument("--name", default=None, help="file name stem of the documents (default: from the source)")
    live.add_argument("--top-k", type=common.top_k_value, default=5, help="emotions per face or window (1-40, default 5)")
    live.add_argument("--model-size", choices=["small", "large", "plus"], default="small",
                      help="Empathic-Insight-{Face,Voice}-Small (default) or -Large; plus: Voice-Plus for voices "
                           "(with its 4 audio-quality experts), Face-Small for faces")
    live.add_argument("--voice-encoder", choices=["auto", "emowhisper", "bud-e-whisper"], default="auto",
                      help="Whisper encoder under the voice heads (default auto: the model's own)")
    common.add_revision_option(live)
    faces = live.add_argument_group("faces")
    common.add_detection_options(faces)
    common.add_runtime_options(live)
    common.add_weight_options(live)


class _EventWriter:
    """JSON lines, flushed one by one (a follower reads them as they come)."""

    def __init__(self, target: str):
        self._stream = sys.stdout if target == "-" else open(target, "w", encoding="utf-8")
        self._own = target != "-"

    def __call__(self, event: dict) -> None:
        self._stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._own:
            self._stream.close()


def run(args) -> int:
    from .faces.detect import make_detector
    from .live.session import LiveOptions, LiveSession, session_name
    from .live.source import LiveSource, check_source
    from .models.runtime import make_runtime

    if args.output is not None and args.output.is_file():
        raise common.CliError(f"{args.output}: is a file; -o names the folder for the session's documents")
    if args.format and args.output is None:
        raise common.CliError("-f chooses the documents written at the end: it needs -o FOLDER")
    sliding = common.sliding_options_from(args)
    check_source(args.source, args.realtime)
    runtime = make_runtime(args.device, args.precision, args.batch_size)
    stop = threading.Event()

    def open_source() -> LiveSource:
        return LiveSource(args.source, video=args.face or not args.voice, audio=args.voice or not args.face,
                          realtime=args.realtime, open_timeout_s=args.open_timeout,
                          read_timeout_s=args.read_timeout, stop=stop)

    # With --face and/or --voice the models load before the stream opens, so that no backlog builds up
    # while they load; without them the stream is opened first to see what it carries, and what arrives
    # during the load is skipped like any sample the models could not take in time.
    source = None if (args.face or args.voice) else open_source()
    try:
        face, voice = (args.face, args.voice) if source is None else (source.info.has_video, source.info.has_audio)
        revisions = common.revisions_of(args, face, voice)
        face_options = common.face_options_from(args, args.pps) if face else None
        detector = make_detector(face_options.detector, face_options.detection) if face else None
        writers = _documents(args, face, voice)
        face_model = common.load_face_model(args, runtime, revisions) if face else None
        voice_model = None
        if voice:
            from .models.voice import attribute_selection

            attributes = None if args.voice_attributes == "auto" else attribute_selection(args.voice_attributes)
            voice_model = common.load_voice_model(args, runtime, attributes, revisions)
        source = source or open_source()
        events = _EventWriter(args.events)
        options = LiveOptions(faces=face_options, voices=sliding if voice else None, top_k=args.top_k)
        session = LiveSession(options, face_model, voice_model, detector, on_event=events)
        previous = _stop_on(signal.SIGTERM, stop)
        try:
            result = session.run(source)
            events({"type": "summary", **result.summary.to_dict()})
        finally:
            signal.signal(signal.SIGTERM, previous)
            events.close()
    finally:
        if source is not None:
            source.close()
    print(f"empathic: {result.summary.line()}", file=sys.stderr)
    if args.output is not None:
        stem = args.name or session_name(args.source)
        analyses = {"face": result.face, "voice": result.voice}
        args.output.mkdir(parents=True, exist_ok=True)
        for suffix, writer, kind in writers:
            target = args.output / f"{stem}.{suffix}"
            target.write_text(writer.render(analyses[kind]), encoding="utf-8")
            log.info("wrote %s", target)
    return common.EXIT_ERROR if result.summary.dropped else 0


def _stop_on(signum: int, stop: threading.Event):
    """A service manager's stop (SIGTERM) ends the session like Ctrl-C: the documents are written."""
    try:
        return signal.signal(signum, lambda *_: stop.set())
    except ValueError:  # not the main thread (a test calling run() from a thread)
        return signal.getsignal(signum)


def _documents(args, face: bool, voice: bool) -> list[tuple[str, object, str]]:
    if args.output is None:
        return []
    kinds = [k for k, wanted in (("face", face), ("voice", voice)) if wanted]
    formats = args.format or [f for f, kind in (("coco", "face"), ("webvtt", "voice")) if kind in kinds]
    chosen = []
    for fmt in dict.fromkeys(formats):
        targets = [k for k in kinds if LIVE_FORMATS[fmt] in (None, k)]
        if not targets:
            raise common.CliError(f"-f {fmt} is for {LIVE_FORMATS[fmt]} analysis; add --{LIVE_FORMATS[fmt]}")
        for kind in targets:
            writer = common.writer_for(fmt, kind, args.top_k)
            chosen.append((writer.extension, writer, kind))
    return chosen
