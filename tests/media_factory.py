"""Media made by the tests: real face photos moving over video frames, numbered frames, VFR clips,
espeak-ng voices at known times, and two talking faces whose mouths follow known voices.

The face is scikit-image's bundled astronaut photo (Eileen Collins), a real face that OpenCV's Haar
cascade finds at (177, 66, 95, 95) in the 512 px original.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage.data import astronaut, chelsea, coffee

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
    frames = iter(frames)  # any iterable: a generator streams long clips without holding every frame
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop),
                          "sc_threshold": "0", "bf": "2"}
        if times_s is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(itertools.chain([first], frames)):
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


# Stills for detection: the astronaut's face at known sizes, turned, blurred, darkened or brightened,
# on textured noise beside a cat and a cup of coffee (things that are not faces).
ASTRONAUT_FACE = (177, 66, 95, 95)  # Haar's box in the 512 px photo: x, y, w, h
FACE_SIZE_BUCKETS = ((30, 40), (40, 60), (60, 100), (100, 200), (200, 300))  # box sides in pixels
FACE_PATCH_MARGIN = 0.45  # of the face's size, kept around it when pasted


def face_patch(size: float, mirror: bool = False, gain: float = 1.0, angle_deg: float = 0.0,
               blur_px: float = 0.0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The astronaut's face with a margin around it, scaled so that its box is ``size`` pixels, and
    that box inside the patch."""
    x, y, w, h = ASTRONAUT_FACE
    margin = round(FACE_PATCH_MARGIN * w)
    top, left = max(0, y - margin), x - margin
    photo = astronaut()[top:y + h + margin, left:x + w + margin]
    fx, fy = x - left, y - top
    if mirror:
        photo = photo[:, ::-1]
        fx = photo.shape[1] - fx - w
    s = size / w
    patch = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    box = (fx * s, fy * s, w * s, h * s)
    if angle_deg:
        centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
        patch = cv2.warpAffine(patch, cv2.getRotationMatrix2D(centre, angle_deg, 1.0),
                               (patch.shape[1], patch.shape[0]), borderMode=cv2.BORDER_REFLECT)
    if blur_px:
        patch = cv2.GaussianBlur(patch, (0, 0), blur_px)
    return np.clip(patch.astype(np.float32) * gain, 0, 255).astype(np.uint8), box


@dataclass(frozen=True)
class FacesScene:
    rgb: np.ndarray
    faces: tuple[tuple[float, float, float, float], ...]  # where each pasted face's box is: x, y, w, h


def faces_scene(seed: int, width: int = 1280, height: int = 720,
                sizes: tuple[float, ...] | None = None) -> FacesScene:
    """A frame with one face of each size in ``sizes`` (default: a random size from each of
    FACE_SIZE_BUCKETS), each mirrored or not, turned up to 12 degrees, blurred up to 1.5 px and
    darkened or brightened, at random places where no two overlap."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(40, 220, (height // 4, width // 4, 3), dtype=np.uint8)
    canvas = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.5), (width, height), interpolation=cv2.INTER_LINEAR)
    canvas = np.clip(canvas.astype(np.int16) + rng.integers(-20, 21, canvas.shape), 0, 255).astype(np.uint8)
    if sizes is None:
        sizes = tuple(rng.uniform(low, high) for low, high in FACE_SIZE_BUCKETS)
    taken: list[tuple[int, int, int, int]] = []

    def place(image: np.ndarray) -> tuple[int, int] | None:
        h, w = image.shape[:2]
        for _ in range(200):
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in taken):
                taken.append((x, y, w, h))
                canvas[y:y + h, x:x + w] = image
                return x, y
        return None

    faces = []
    for size in sorted(sizes, reverse=True):  # the largest first, while there is room
        patch, (fx, fy, fw, fh) = face_patch(size, bool(rng.integers(2)), rng.uniform(0.6, 1.25),
                                             rng.uniform(-12, 12), rng.uniform(0, 1.5))
        at = place(patch)
        if at is not None:
            faces.append((at[0] + fx, at[1] + fy, fw, fh))
    for thing in (chelsea(), coffee()):
        scale = rng.uniform(0.3, 0.6)
        place(cv2.resize(thing, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return FacesScene(canvas, tuple(faces))


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


# Talking faces: two real faces whose mouths open with the loudness of one voice each, and a third,
# off-screen voice, so that an audio-visual speaker linker has a known answer.
TALKING_VOICES = (  # name, espeak-ng voice, extra arguments, sentence (about 3 s each)
    ("A", "en-us+m3", [], "Hello there, I am really very happy to see you again today."),
    ("B", "en-gb+f3", ["-p", "70"], "Oh no, I am so sorry. That is terrible news."),
    ("C", "de+f2", ["-p", "40"], "Let us wait and see what happens next week."),  # a German accent
)
MOUTH_LEAD_S = 0.04  # the mouth moves this much before the sound, as in real speech


@dataclass(frozen=True)
class TalkingFaces:
    path: Path  # H.264 + AAC mp4
    wav: Path  # the mixed 16 kHz mono sound track
    duration_s: float
    fps: int
    faces: tuple[PlacedFace, ...]  # left (0) and right (1); expected_box() gives each face box
    voices: tuple[tuple[str, float, float, int | None], ...]  # name, start_s, end_s, face index (None: off screen)
    still: bool  # True: no mouth moves although ``voices`` still tells whose voice is whose

    def mouth_box(self, face_index: int) -> tuple[int, int, int, int]:
        return mouth_region(self.faces[face_index].expected_box())


def mouth_region(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the animated mouth: the lower 30 % of a face box, its middle 40 %."""
    x, y, w, h = box
    return (int(round(x + 0.3 * w)), int(round(y + 0.7 * h)), int(round(x + 0.7 * w)), int(round(y + h)))


def _trim_to_speech(samples: np.ndarray, rate: int = 16000, hop_s: float = 0.01,
                    threshold: float = 0.02) -> np.ndarray:
    """The samples from the first to the last 10 ms frame whose RMS exceeds ``threshold`` of the
    loudest frame's."""
    hop = int(round(hop_s * rate))
    count = len(samples) // hop
    rms = np.sqrt((samples[:count * hop].astype(np.float64).reshape(count, hop) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > threshold * rms.max())
    return samples[loud[0] * hop:(loud[-1] + 1) * hop]


def speech_envelope(samples: np.ndarray, rate: int = 16000, window_s: float = 0.04, hop_s: float = 0.01,
                    smooth: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of the amplitude envelope: RMS over ``window_s`` windows centred every
    ``hop_s``, smoothed by a ``smooth``-hop Hann window, normalised so that its peak is 1."""
    win, hop = int(round(window_s * rate)), int(round(hop_s * rate))
    padded = np.pad(samples.astype(np.float64), (win // 2, win - win // 2))
    energy = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    starts = np.arange(len(samples) // hop + 1) * hop
    rms = np.sqrt(np.maximum(energy[starts + win] - energy[starts], 0.0) / win)
    kernel = np.hanning(smooth + 2)[1:-1]
    smoothed = np.convolve(rms, kernel / kernel.sum(), mode="same")
    peak = smoothed.max()
    return starts / rate, smoothed / peak if peak > 0 else smoothed


# The open mouth: its inside's share of the lips' mean colour, its pattern's spread (grey levels)
# and the pattern's block size (px).
MOUTH_DARK, MOUTH_SIGMA, MOUTH_BLOCK = 0.6, 90.0, 2


def _draw_mouth(canvas: np.ndarray, box: tuple[float, float, float, float], opening: float,
                rng: np.random.Generator) -> None:
    """The mouth opens as ``opening`` (0..1) goes up: an ellipse over the photo's lips is blended,
    in proportion, towards a darker inside shaded by a pattern drawn afresh each frame (tongue and
    teeth on the move). So the mouth darkens smoothly with the opening and changes from frame to
    frame as much as it is open, at any frame rate; a mouth drawn as a growing dark shape instead
    changes most where the opening changes fastest, which follows the sound's envelope poorly.
    0: the photo's own closed mouth."""
    if opening <= 0.0:
        return
    x, y, w, h = box
    x0, y0, x1, y1 = mouth_region(box)
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    centre = (int(round((x + 0.5 * w - x0) * 16)), int(round((y + 0.81 * h - y0) * 16)))
    mask = np.zeros(region.shape[:2], np.uint8)
    cv2.ellipse(mask, centre, (int(round(w * 0.16 * 16)), int(round(h * 0.075 * 16))), 0, 0, 360, 255, -1,
                cv2.LINE_AA, 4)
    weight = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.5)[..., None]
    inside = region[mask > 127].mean(axis=0) * MOUTH_DARK
    rows, cols = -(-region.shape[0] // MOUTH_BLOCK), -(-region.shape[1] // MOUTH_BLOCK)
    pattern = np.kron(rng.normal(0.0, 1.0, (rows, cols)), np.ones((MOUTH_BLOCK, MOUTH_BLOCK)))
    shade = inside + MOUTH_SIGMA * pattern[:region.shape[0], :region.shape[1], None].astype(np.float32)
    alpha = weight * min(1.0, opening)
    canvas[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + shade * alpha, 0, 255).astype(np.uint8)


def _tint(canvas: np.ndarray, face: PlacedFace, gains: tuple[float, float, float]) -> None:
    h = int(round((HEAD_CROP[0].stop - HEAD_CROP[0].start) * face.scale))
    w = int(round((HEAD_CROP[1].stop - HEAD_CROP[1].start) * face.scale))
    region = canvas[face.y:face.y + h, face.x:face.x + w].astype(np.float32) * np.float32(gains)
    canvas[face.y:face.y + h, face.x:face.x + w] = np.clip(region, 0, 255).astype(np.uint8)


def mux_audio(video: Path, audio: Path, path: Path) -> Path:
    """``video``'s H.264 stream as it is, with ``audio`` encoded to AAC beside it, in one mp4."""
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-i", str(audio), "-map", "0:v:0",
                    "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", str(path)], check=True)
    return path


def talking_faces_video(folder: Path, swap: bool = False, still: bool = False, fps: int = 25,
                        width: int = 960, height: int = 540) -> TalkingFaces:
    """Two faces side by side whose mouths open with voice A (left) and voice B (right), or B and A
    with ``swap``; voice C speaks off screen; with ``still`` no mouth moves, over the same sound.

    The voices speak one after the other: A from 1.0 s, B 1.5 s after A ends, C 1.5 s after B ends,
    then 1.0 s of silence. Each mouth shows its voice's envelope ``MOUTH_LEAD_S`` ahead of the sound.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rate = 16000
    speech = [_trim_to_speech(_espeak(folder, f"talking_{name.lower()}", voice, extra, text))
              for name, voice, extra, text in TALKING_VOICES]
    starts, cursor = [], 1.0
    for samples in speech:
        starts.append(round(cursor * rate))
        cursor = starts[-1] / rate + len(samples) / rate + 1.5
    frames = int(np.ceil((starts[-1] + len(speech[-1]) + rate) / rate * fps))
    duration = frames / fps
    track = np.zeros(int(round(duration * rate)), np.float32)
    for start, samples in zip(starts, speech):
        track[start:start + len(samples)] += samples
    stem = "talking_faces" + ("_swap" if swap else "") + ("_still" if still else "")
    wav = write_wav(folder / f"{stem}.wav", track)

    face_of = {"A": 1 if swap else 0, "B": 0 if swap else 1, "C": None}
    voices = tuple((name, start / rate, (start + len(samples)) / rate, face_of[name])
                   for (name, *_), start, samples in zip(TALKING_VOICES, starts, speech))

    crop_h, crop_w = HEAD_CROP[0].stop - HEAD_CROP[0].start, HEAD_CROP[1].stop - HEAD_CROP[1].start
    scale = min(height * 0.7 / crop_h, width * 0.4 / crop_w)  # 960x540: a face box of about 150 px
    head_h, head_w = int(round(crop_h * scale)), int(round(crop_w * scale))
    top = (height - head_h) // 2
    faces = (PlacedFace(width // 4 - head_w // 2, top, scale),
             PlacedFace(3 * width // 4 - head_w // 2, top, scale, mirror=True))
    base = background(width, height, seed=2)
    paste(base, faces[0])
    paste(base, faces[1])
    _tint(base, faces[1], (0.8, 0.95, 1.2))  # a cooler, bluer second person

    times = np.arange(frames) / fps + MOUTH_LEAD_S
    voice_of = {face: k for k, (_, _, _, face) in enumerate(voices) if face is not None}
    openings = []
    for face_index in (0, 1):
        k = voice_of[face_index]
        env_t, env = speech_envelope(speech[k], rate)
        openings.append(np.interp(times - starts[k] / rate, env_t, env, left=0.0, right=0.0))

    def render():
        rng = np.random.default_rng(3)
        for i in range(frames):
            canvas = base.copy()
            if not still:
                for face, opening in zip(faces, openings):
                    _draw_mouth(canvas, face.expected_box(), float(opening[i]), rng)
            yield canvas

    silent = write_video(folder / f"{stem}_video.mp4", render(), fps=fps, gop=2 * fps)
    path = mux_audio(silent, wav, folder / f"{stem}.mp4")
    return TalkingFaces(path, wav, duration, fps, faces, voices, still)
