"""Media made by the tests: real face photos moving over video frames, numbered frames, VFR clips.

The face is scikit-image's bundled astronaut photo (Eileen Collins), a real face that OpenCV's Haar
cascade finds at (177, 66, 95, 95) in the 512 px original.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage.data import astronaut

HEAD_CROP = (slice(20, 260), slice(130, 330))  # rows, cols of the astronaut photo around her head
FACE_IN_CROP = (47, 46, 95, 95)  # Haar's face box inside that crop: x, y, w, h
BIT_BLOCK = 40  # frame-number code: one 40 px block per bit along the top edge


def head() -> np.ndarray:
    return np.ascontiguousarray(astronaut()[HEAD_CROP])


@dataclass(frozen=True)
class PlacedFace:
    x: int
    y: int
    scale: float = 1.0
    mirror: bool = False

    def expected_box(self) -> tuple[float, float, float, float]:
        fx, fy, fw, fh = FACE_IN_CROP
        if self.mirror:
            fx = HEAD_CROP[1].stop - HEAD_CROP[1].start - fx - fw
        s = self.scale
        return (self.x + fx * s, self.y + fy * s, fw * s, fh * s)


def paste(canvas: np.ndarray, face: PlacedFace) -> None:
    image = head()
    if face.mirror:
        image = image[:, ::-1]
    if face.scale != 1.0:
        image = cv2.resize(image, None, fx=face.scale, fy=face.scale, interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    canvas[face.y:face.y + h, face.x:face.x + w] = image


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(90, 170, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(cv2.GaussianBlur(noise, (0, 0), 2), (width, height), interpolation=cv2.INTER_LINEAR)


def draw_frame_number(canvas: np.ndarray, number: int, bits: int = 12) -> None:
    for bit in range(bits):
        value = 255 if (number >> bit) & 1 else 0
        canvas[0:BIT_BLOCK, bit * BIT_BLOCK:(bit + 1) * BIT_BLOCK] = value


def read_frame_number(rgb: np.ndarray, bits: int = 12) -> int:
    number = 0
    for bit in range(bits):
        block = rgb[8:BIT_BLOCK - 8, bit * BIT_BLOCK + 8:(bit + 1) * BIT_BLOCK - 8]
        if block.mean() > 127:
            number |= 1 << bit
    return number


def write_video(path: Path, frames, times_s=None, fps: int = 30, gop: int = 30, crf: int = 20) -> Path:
    """Encode RGB frames to H.264 with PyAV; ``times_s`` gives each frame's own presentation time
    (variable frame rate) instead of a constant ``fps``."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop),
                          "sc_threshold": "0", "bf": "2"}
        if times_s is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if times_s is not None:
                frame.pts = int(round(times_s[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_face_video(path: Path, seconds: float = 3.0, fps: int = 30, faces: int = 1,
                      width: int = 1280, height: int = 720, step: int = 3) -> tuple[Path, list]:
    """One or two real faces moving across a 720p canvas; returns the path and, per frame, the
    placed faces (for expected boxes)."""
    frames, placements = [], []
    base = background(width, height)
    for i in range(int(seconds * fps)):
        canvas = base.copy()
        placed = [PlacedFace(100 + step * i, 200 + i % 7)]
        if faces == 2:
            placed.append(PlacedFace(1000 - step * i, 300, scale=0.8, mirror=True))
        for face in placed:
            paste(canvas, face)
        draw_frame_number(canvas, i)
        frames.append(canvas)
        placements.append(placed)
    return write_video(path, frames, fps=fps), placements


def numbered_video(path: Path, count: int, fps: int = 30, gop: int = 30, width: int = 640,
                   height: int = 360, times_s=None) -> Path:
    """Frames that carry their own index as a bit pattern, no faces."""
    base = background(width, height, seed=1)
    frames = []
    for i in range(count):
        canvas = base.copy()
        draw_frame_number(canvas, i)
        frames.append(canvas)
    return write_video(path, frames, times_s=times_s, fps=fps, gop=gop)


# Speech: two espeak-ng voices (a lower male US voice, a higher female UK voice) with silence
# around and between them, at known times.
VOICE_A = ("en-us+m3", [], "Hello there, I am really happy to see you today. This is wonderful news.")
VOICE_B = ("en-gb+f3", ["-p", "70"], "Oh no, I am so sorry. That is terrible, I feel awful about it.")


@dataclass(frozen=True)
class SpeechTrack:
    path: Path
    duration_s: float
    speech_s: tuple[tuple[float, float], ...]  # (start, end) of each voice's audio, silence trimmed
    silence_s: tuple[tuple[float, float], ...]  # stretches known to be silent


def _espeak(folder: Path, name: str, voice: str, extra: list[str], text: str) -> np.ndarray:
    import subprocess

    from empathic.audio import decode_audio

    wav = folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, *extra, "-w", str(wav), text], check=True)
    samples = decode_audio(wav).samples
    voiced = np.flatnonzero(np.abs(samples) > 1e-3)
    return samples[voiced[0]:voiced[-1] + 1]  # espeak pads with silence: keep the speech only


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import wave

    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def two_voice_track(folder: Path, lead_s: float = 1.0, gap_s: float = 2.0, tail_s: float = 1.5) -> SpeechTrack:
    """16 kHz mono WAV: silence, voice A, silence, voice B, silence."""
    folder.mkdir(parents=True, exist_ok=True)
    a = _espeak(folder, "voice_a", *VOICE_A)
    b = _espeak(folder, "voice_b", *VOICE_B)
    rate = 16000
    pieces = [np.zeros(int(lead_s * rate), np.float32), a, np.zeros(int(gap_s * rate), np.float32), b,
              np.zeros(int(tail_s * rate), np.float32)]
    track = np.concatenate(pieces)
    a_start = len(pieces[0]) / rate
    a_end = a_start + len(a) / rate
    b_start = a_end + gap_s
    b_end = b_start + len(b) / rate
    duration = len(track) / rate
    path = write_wav(folder / "two_voices.wav", track)
    return SpeechTrack(path, duration, ((a_start, a_end), (b_start, b_end)),
                       ((0.0, a_start), (a_end, b_start), (b_end, duration)))


def mux_video_with_audio(path: Path, audio: Path, duration_s: float, size: str = "320x240") -> Path:
    """An H.264 + AAC mp4 of a test pattern with ``audio`` as its sound track."""
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25:duration={duration_s:.3f}", "-i", str(audio),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-b:a", "128k", "-shortest", str(path)], check=True)
    return path
