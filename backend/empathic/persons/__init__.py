"""One timeline per person: who is speaking (voice segments linked to face tracks), face and voice
emotions fused per person, and per-shot summaries.

evidence.py gathers what linking and fusion need from the media (mouth motion of each face track
inside the voice segments, the speech envelope, voice quality); everything after it is a pure
computation over the face analysis, the voice analysis and that evidence, so changing linking or
fusion settings needs no new inference and no new decoding.
"""
