"""RTTM (NIST Rich Transcription Time Marked) speaker turns of a diarized voice analysis.

    SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>
"""

from __future__ import annotations

from pathlib import Path

from ..results import VoiceAnalysis


def speaker_turns(analysis: VoiceAnalysis) -> list[tuple[float, float, str]]:
    """Segments of known speakers; the pieces of a split turn are joined back into one turn."""
    turns: list[list] = []
    for segment in sorted(analysis.segments, key=lambda s: (s.start_s, s.end_s)):
        if segment.speaker is None:
            continue
        if turns and turns[-1][2] == segment.speaker and abs(turns[-1][1] - segment.start_s) < 1e-6:
            turns[-1][1] = segment.end_s
        else:
            turns.append([segment.start_s, segment.end_s, segment.speaker])
    return [tuple(t) for t in turns]


class WriteRTTM:
    extension = "rttm"

    def render(self, analysis: VoiceAnalysis) -> str:
        turns = speaker_turns(analysis)
        if analysis.segments and not turns:
            raise ValueError("RTTM lists speaker turns, and these segments have no speakers: use "
                             "--segmentation diarization")
        uri = Path(analysis.media.get("file_name") or "audio").stem.replace(" ", "_") or "audio"
        return "".join(f"SPEAKER {uri} 1 {start:.3f} {end - start:.3f} <NA> <NA> "
                       f"{speaker.replace(' ', '_')} <NA> <NA>\n" for start, end, speaker in turns)
