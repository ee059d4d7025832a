"""WebVTT of a voice analysis: one cue per segment, the speaker as a voice span, the top emotions.

    00:00:05.000 --> 00:00:10.000
    <v SPEAKER_01>what was said, when transcribed
    EMOTIONS: Sadness(0.184), Distress(0.091), ...

The number is the emotion's share (softmax over the 40 emotions), as in the JSON's ``score``.
With Voice-Plus, the header NOTE also describes the four audio-quality experts, and a NOTE before
each cue gives its values (players skip NOTE blocks; people and scripts can read them).
"""

from __future__ import annotations

from ..results import VoiceAnalysis
from ..taxonomy import VOICE_QUALITY_EXPERTS


def timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def escape(text: str) -> str:
    """Cue text escapes as WebVTT requires (emotion names such as "Jealousy & Envy" need it)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _note(text: str) -> str:
    # A NOTE block ends at a blank line and may not contain "-->".
    return "NOTE\n" + "\n".join(line for line in text.replace("-->", "->").splitlines() if line.strip())


class WriteVTT:
    extension = "vtt"

    def __init__(self, top_k: int = 5):
        self.top_k = top_k

    def render(self, analysis: VoiceAnalysis, persons=None) -> str:
        """``persons`` (a PersonsAnalysis, with ``--fuse``) names each cue's voice after its person."""
        info = analysis.model_info()
        header = [
            f"LAION Empathic Insight voice emotions for {analysis.media.get('file_name', '')}",
            f"model: {info['repo']}@{info['revision']} ({info['model_size']}), encoder "
            f"{info['backbone']}@{info['backbone_revision']}, {info['precision']}",
            "parameters: " + ", ".join(f"{k}={v}" for k, v in analysis.parameters),
            "EMOTIONS lists the top emotions with their share (softmax over LAION's 40 emotions).",
        ]
        quality_ids = analysis.audio_quality_ids
        if quality_ids:
            header.append("AUDIO QUALITY notes give Voice-Plus's quality experts per segment (never part of the "
                          "shares); LAION calls them MOS-like, roughly 1-5, higher is better:")
            header += [f"  {q.id}: {q.name}, distilled from {q.distilled_from}" for q in VOICE_QUALITY_EXPERTS
                       if q.id in quality_ids]
        blocks = ["WEBVTT", _note("\n".join(header))]
        for segment in analysis.segments:
            if segment.audio_quality:
                values = ", ".join(f"{k}={v:.2f}" for k, v in segment.audio_quality)
                blocks.append(_note(f"AUDIO QUALITY {segment.segment_index + 1}: {values}"))
            lines = []
            if segment.transcription:
                lines.append(escape(" ".join(segment.transcription.split())))
            emotions = ", ".join(f"{escape(e.name)}({e.share:.3f})" for e in segment.top(self.top_k))
            lines.append(f"EMOTIONS: {emotions}")
            voice = persons.segment_person.get(segment.segment_index) if persons is not None else segment.speaker
            if voice is not None:
                speaker = escape(voice).replace("\n", " ")
                lines[0] = f"<v {speaker}>{lines[0]}"
            blocks.append(f"{segment.segment_index + 1}\n{timestamp(segment.start_s)} --> "
                          f"{timestamp(segment.end_s)}\n" + "\n".join(lines))
        return "\n\n".join(blocks) + "\n"
