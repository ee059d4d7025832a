"""Haar face detection that runs the full cascade only where a cheap pass proposes faces.

OpenCV's ``detectMultiScale`` shrinks the frame for each scale and slides the cascade's 24 px
window over it: over every second pixel while the scale is under 2, over every pixel from 2 on. The
scales from 2 on are therefore most of the cost (about 3/4 of a 720p frame), though faces fill
little of them. Here the same detection is made in three steps:

1. propose: the cascade's first stages scan the frame, then the frame at a half, a quarter, ... of
   its size, each only at scales under 2 (every second pixel). A shortened cascade accepts many
   windows around a face, so this sparse scan still finds the faces the full scan finds; it also
   accepts some non-faces, which step 2 rejects.
2. confirm: the full cascade visits the full scan's own windows (the same shrunk pixels, the same
   grid) in each proposal's neighbourhood only, at the scales whose windows can belong to a face of
   the proposal's size.
3. group: the windows accepted there are grouped as OpenCV groups them (``groupRectangles``).

Wherever a proposal led the search to a face, its box and confidence are therefore the full scan's,
to the pixel; a face no proposal points at is missed, and so are false detections away from any
proposal.
"""

from __future__ import annotations

import math
import os
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUP_EPS = 0.2  # OpenCV's own, in CascadeClassifier::detectMultiScale
MAX_WORKERS = 4  # searches of one frame at once; each is small, more threads would mostly wait
_PAIR_ROWS = 1024


@dataclass(frozen=True)
class LocalSearchOptions:
    # The proposal pass: the first 15 of the frontal-face cascade's 25 stages, in groups of at least
    # 3 windows; scales 1.2 apart on the frame and its half (most of the pass's cost), 1.1 apart on
    # the quarter and smaller (cheap, and where large faces are few pixels). Tuned on
    # bench/bench_detect.py's frames: it points at all but about 1 in 500 of the faces the full scan
    # finds, for a fifth to a quarter of the full scan's time.
    proposal_stages: int = 15
    proposal_scale_factors: tuple[float, ...] = (1.2, 1.2, 1.1)
    proposal_min_neighbors: int = 2
    # Around a face the full cascade accepts windows from about 0.7 to 1.4 times the size of the box
    # it reports, and a proposal's size is off by up to about 20 %. Around a proposal of size w, the
    # windows from w / smaller to w * larger whose centres lie within reach * w of its centre are
    # visited. On the bench's frames boxes then lie within a few pixels of the full scan's (wider
    # settings make them equal, at a cost of about a third more time).
    smaller: float = 1.7
    larger: float = 1.5
    reach: float = 0.3


def truncated_cascade(path: Path, stages: int) -> str:
    """The cascade in ``path`` (OpenCV's XML format) cut after its first ``stages`` stages, as XML."""
    root = ElementTree.parse(path).getroot()
    cascade = root.find("cascade")
    all_stages = cascade.find("stages")
    for stage in list(all_stages)[stages:]:
        all_stages.remove(stage)
    cascade.find("stageNum").text = str(stages)
    return '<?xml version="1.0"?>\n' + ElementTree.tostring(root, encoding="unicode")


def load_cascade(xml: str):
    """A CascadeClassifier from the text of its XML file."""
    import cv2

    storage = cv2.FileStorage(xml, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY)
    classifier = cv2.CascadeClassifier()
    if not classifier.read(storage.getFirstTopLevelNode()):
        raise RuntimeError("not a cascade classifier")
    return classifier


class PerThread(threading.local):
    """One object per thread: a CascadeClassifier keeps the buffers of its current call in itself,
    so two threads must not share one."""

    def __init__(self, make: Callable[[], object]):
        self._make = make
        self._object = None

    def get(self):
        if self._object is None:
            self._object = self._make()
        return self._object


def scan_levels(scale_factor: float, window: int, min_side: int, max_side: int) -> list[tuple[float, int]]:
    """(scale, window side) of every scale ``detectMultiScale`` visits, computed as it computes them
    (a running product in double precision, sides rounded), so a search at one of them alone visits
    exactly that scale."""
    levels = []
    factor = 1.0
    while True:
        side = round(window * factor)
        if side > max_side:
            return levels
        if side >= min_side:
            levels.append((factor, side))
        factor *= scale_factor


def proposal_octaves(height: int, width: int, window: int, min_side: int,
                     options: LocalSearchOptions) -> list[tuple[int, float, int]]:
    """(shrink, scale factor, smallest window) of each halving of the frame the proposals come from,
    the frame itself first; each is scanned only with windows under twice the base size."""
    octaves = []
    shrink = 1
    while min(height, width) // shrink >= window:
        # A face somewhat smaller than min_side still has windows of min_side, which the full scan
        # reports as a face of about that size: halvings look for faces down to min_side / larger.
        # The frame itself does not, as its smallest windows are the dearest to scan.
        smallest = max(window, math.ceil(min_side / shrink / (options.larger if shrink > 1 else 1)))
        if smallest < 2 * window:
            factors = options.proposal_scale_factors
            octaves.append((shrink, factors[min(len(octaves), len(factors) - 1)], smallest))
        shrink *= 2
    return octaves


def propose(gray: np.ndarray, cascade, octave: tuple[int, float, int], min_neighbors: int) -> np.ndarray:
    """Candidate face boxes (x, y, w, h in ``gray``'s pixels) from ``cascade`` on one halving."""
    import cv2

    shrink, scale_factor, smallest = octave
    window = cascade.getOriginalWindowSize()[0]
    height, width = gray.shape[:2]
    size = (round(width / shrink), round(height / shrink))
    image = gray if shrink == 1 else cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    boxes = np.asarray(cascade.detectMultiScale(
        image, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(smallest, smallest),
        maxSize=(2 * window - 1, 2 * window - 1)), np.float64).reshape(-1, 4)
    return boxes * [width / size[0], height / size[1], width / size[0], height / size[1]]


def search_regions(proposals: np.ndarray, levels: list[tuple[float, int]],
                   options: LocalSearchOptions) -> dict[int, list[tuple[float, float, float, float]]]:
    """For each scale (an index into ``levels``), the regions (x0, y0, x1, y1) of the frame to
    search there: the neighbourhood of each proposal whose face may show at that scale, overlapping
    ones merged so that no window is visited twice (OpenCV's grouping counts each window once)."""
    wanted: dict[int, list[tuple[float, float, float, float]]] = {}
    for x, y, w, h in proposals:
        size = max(w, h)
        cx, cy = x + w / 2, y + h / 2
        for index, (_, side) in enumerate(levels):
            if size / options.smaller <= side <= size * options.larger:
                half = side / 2 + options.reach * size
                wanted.setdefault(index, []).append((cx - half, cy - half, cx + half, cy + half))
    return {index: merge_overlapping(regions) for index, regions in sorted(wanted.items())}


def _overlap(r, q) -> bool:
    return r[0] < q[2] and q[0] < r[2] and r[1] < q[3] and q[1] < r[3]


def merge_overlapping(regions: list) -> list[tuple[float, float, float, float]]:
    """Regions replaced by the bounding box of any that overlap, until none overlap."""
    merged = [list(r) for r in regions]
    changed = True
    while changed:
        changed = False
        kept: list[list[float]] = []
        for r in merged:
            for k in kept:
                if _overlap(r, k):
                    k[:] = [min(k[0], r[0]), min(k[1], r[1]), max(k[2], r[2]), max(k[3], r[3])]
                    changed = True
                    break
            else:
                kept.append(r)
        merged = kept
    return [tuple(r) for r in merged]


def shrunk_frame(gray: np.ndarray, factor: float) -> np.ndarray:
    """The frame as ``detectMultiScale`` shrinks it for a scale: the same size and interpolation,
    hence the same pixels (FeatureEvaluator::setImage)."""
    import cv2

    height, width = gray.shape[:2]
    size = [round(float(np.float32(n) / np.float32(factor))) for n in (width, height)]  # in float, as OpenCV
    return cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR_EXACT)


def accepted_windows(shrunk: np.ndarray, cascade, level: tuple[float, int],
                     regions) -> tuple[np.ndarray, np.ndarray]:
    """Every window of the level's scale that the cascade accepts in the regions (frame pixels),
    ungrouped: (x, y, w, h) in frame pixels, as ``detectMultiScale`` places them, and the last
    stage's weight of each.

    ``shrunk`` is the frame shrunk for this scale (``shrunk_frame``). Each region is cut out of it
    on the full scan's grid (from an even pixel where every second one is visited) and searched at
    its own size, so that the windows visited and their pixels are the full scan's."""
    factor, _ = level
    window = cascade.getOriginalWindowSize()[0]
    reported_side = round(float(np.float32(window) * np.float32(factor)))
    step = 1 if factor >= 2 else 2  # OpenCV's, in FeatureEvaluator::updateScaleData
    rows, columns = shrunk.shape[:2]
    rects, weights = [np.zeros((0, 4), np.int64)], [np.zeros(0)]
    for x0, y0, x1, y1 in regions:
        left = max(0, math.floor(x0 / factor / step) * step)
        top = max(0, math.floor(y0 / factor / step) * step)
        right, bottom = min(columns, math.ceil(x1 / factor)), min(rows, math.ceil(y1 / factor))
        if right - left < window or bottom - top < window:
            continue
        cut = shrunk[top:bottom, left:right]
        if step == 1:
            # The cascade visits every pixel only at scales of 2 and more: the cut is doubled by
            # repeating pixels, and the cascade's own halving (an exact 2x2 mean) gives it back.
            cut = np.repeat(np.repeat(cut, 2, axis=0), 2, axis=1)
        # minNeighbors=0: OpenCV returns the windows themselves, ungrouped.
        found, _, weight = cascade.detectMultiScale3(
            cut, scaleFactor=2.0, minNeighbors=0, minSize=(window * (3 - step),) * 2,
            maxSize=(window * (3 - step),) * 2, outputRejectLevels=True)
        found = np.asarray(found, np.int64).reshape(-1, 4)
        grid = found[:, :2] // (3 - step) + [left, top]  # the window's pixel in the shrunk frame
        placed = np.rint(grid.astype(np.float32) * np.float32(factor)).astype(np.int64)  # in float, as OpenCV
        rects.append(np.column_stack([placed, np.full((len(found), 2), reported_side, np.int64)]))
        weights.append(np.asarray(weight, np.float64).reshape(-1))
    return np.concatenate(rects), np.concatenate(weights)


def group_windows(rects: np.ndarray, weights: np.ndarray, min_neighbors: int,
                  eps: float = GROUP_EPS) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's ``groupRectangles`` with level weights, as ``detectMultiScale3`` applies it:
    windows whose sides all lie within ``eps`` of their mean size join one group (transitively); a
    group of ``min_neighbors`` windows or fewer is dropped, and so is one lying inside a group with
    more windows; a group's box is its windows' mean, its weight their largest. Returned sorted by
    (x, y, w, h) so that the result does not depend on the order the windows came in."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rects = np.asarray(rects, np.int64).reshape(-1, 4)
    weights = np.asarray(weights, np.float64).reshape(-1)
    if len(rects) == 0 or min_neighbors <= 0:
        return rects, weights
    x, y, w, h = (rects[:, i].astype(np.float64) for i in range(4))
    pairs = []
    for start in range(0, len(rects), _PAIR_ROWS):  # in slices: a crowd's windows would not fit n x n
        rows = slice(start, start + _PAIR_ROWS)
        delta = eps * (np.minimum.outer(w[rows], w) + np.minimum.outer(h[rows], h)) * 0.5
        similar = ((np.abs(np.subtract.outer(x[rows], x)) <= delta) & (np.abs(np.subtract.outer(y[rows], y)) <= delta)
                   & (np.abs(np.subtract.outer((x + w)[rows], x + w)) <= delta)
                   & (np.abs(np.subtract.outer((y + h)[rows], y + h)) <= delta))
        i, j = np.nonzero(similar)
        pairs.append((i + start, j))
    i, j = (np.concatenate(v) for v in zip(*pairs))
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(len(rects), len(rects)))
    count, labels = connected_components(graph, directed=False)
    members = np.bincount(labels, minlength=count)
    sums = np.zeros((count, 4), np.int64)
    np.add.at(sums, labels, rects)
    best = np.full(count, -np.inf)
    np.maximum.at(best, labels, weights)
    # OpenCV averages in single precision and rounds half to even, as np.rint does.
    boxes = np.rint(sums.astype(np.float32) * (np.float32(1) / members.astype(np.float32))[:, None]).astype(np.int64)
    strong = [i for i in range(count) if members[i] > min_neighbors]
    kept = []
    for i in strong:
        x1, y1, w1, h1 = boxes[i]
        inside = False
        for j in strong:
            x2, y2, w2, h2 = boxes[j]
            dx, dy = round(w2 * eps), round(h2 * eps)
            if (j != i and x1 >= x2 - dx and y1 >= y2 - dy and x1 + w1 <= x2 + w2 + dx
                    and y1 + h1 <= y2 + h2 + dy and (members[j] > max(3, members[i]) or members[i] < 3)):
                inside = True
                break
        if not inside:
            kept.append(i)
    order = sorted(kept, key=lambda i: tuple(boxes[i]))
    return boxes[order].reshape(-1, 4), best[order]


class LocalHaarSearch:
    """The full cascade's detections, searched for only around proposals (see the module's notes).

    The searches of a frame's halvings and scales are independent: up to ``workers`` of them run at
    once (OpenCV releases the GIL), which keeps the cores busy where each search alone is too small
    for OpenCV's own threads."""

    def __init__(self, cascade_path: Path, scale_factor: float, min_neighbors: int,
                 options: LocalSearchOptions = LocalSearchOptions(), workers: int | None = None):
        import cv2

        full = Path(cascade_path).read_text()
        shortened = truncated_cascade(Path(cascade_path), options.proposal_stages)
        self._cascade = PerThread(lambda: load_cascade(full))
        self._proposer = PerThread(lambda: load_cascade(shortened))
        self._window = self._cascade.get().getOriginalWindowSize()[0]
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self.options = options
        self._workers = min(cv2.getNumThreads(), MAX_WORKERS) if workers is None else workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    def _map(self, function, items) -> list:
        if self._workers <= 1:
            return [function(item) for item in items]
        if self._pool is None or self._pool_pid != os.getpid():  # a forked child has none of the threads
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="empathic-haar")
            self._pool_pid = os.getpid()
        return list(self._pool.map(function, items))

    def detect(self, gray: np.ndarray, min_side: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (x, y, w, h), last-stage weights), as ``detectMultiScale3`` gives them."""
        o = self.options
        height, width = gray.shape[:2]
        octaves = proposal_octaves(height, width, self._window, min_side, o)
        found = self._map(lambda octave: propose(gray, self._proposer.get(), octave, o.proposal_min_neighbors),
                          octaves)
        proposals = np.concatenate([np.zeros((0, 4))] + found)
        proposals = proposals[np.lexsort(proposals.T[::-1])]  # a fixed order, whatever the threads did
        levels = scan_levels(self._scale_factor, self._window, min_side, min(height, width))

        def search(item):
            index, regions = item
            shrunk = shrunk_frame(gray, levels[index][0])
            return accepted_windows(shrunk, self._cascade.get(), levels[index], regions)

        windows = self._map(search, list(search_regions(proposals, levels, o).items()))
        rects = np.concatenate([np.zeros((0, 4), np.int64)] + [r for r, _ in windows])
        weights = np.concatenate([np.zeros(0)] + [w for _, w in windows])
        return group_windows(rects, weights, self._min_neighbors)
