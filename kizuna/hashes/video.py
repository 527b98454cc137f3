"""vPDQ: video hashes as lists of PDQ frame hashes, and vPDQ's two-threshold match between two videos.

A vPDQ hash is one PDQ hash per sampled frame (one a second by default), each with its quality,
frame number and timestamp. Its text form is vPDQ's own, one frame a line:
``frame_number,quality,pdq_hex,timestamp`` (the form of ThreatExchange's sample vPDQ files), so a
signal's pattern can be read by any vPDQ tool.

Two videos match when, among the frames of quality ≥ 50 with duplicate hashes removed, at least
``query_percent`` of the query's frames are within the frame threshold of some frame of the target,
and at least ``target_percent`` of the target's frames are within it of some frame of the query.
The defaults are vPDQ's: frame distance ≤ 31, 80% of the query, 0% of the target (so a clip of a
longer banked video matches).

Computing vPDQ needs the optional ``vpdq`` package (``pip install kizuna[video]``, which builds
against FFmpeg's libraries); reading, storing and matching vPDQ hashes does not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np

from kizuna.hashes.signals import MIN_QUALITY, VPDQ_QUERY_PERCENT, VPDQ_TARGET_PERCENT, Frame, parse_frames

QUERY_PERCENT: Final = VPDQ_QUERY_PERCENT
TARGET_PERCENT: Final = VPDQ_TARGET_PERCENT
#: How often a frame is hashed.
SECONDS_PER_HASH: Final = 1.0

# Container signatures of common video formats: such a file is offered to the vPDQ hasher.
_MP4_BRANDS = b"ftyp"
_VIDEO_MAGIC = (b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"0&\xb2u")


class VideoError(ValueError):
    """A video that cannot be hashed (unreadable, or the vPDQ extra is not installed)."""


@dataclass(frozen=True)
class VideoRule:
    """When a video matches a vPDQ signal (besides the per-frame distance threshold)."""

    query_percent: float = QUERY_PERCENT
    target_percent: float = TARGET_PERCENT
    #: Also across types: an image against the frames of video signals, a video's frames against image signals.
    across: bool = False


DEFAULT_RULE: Final = VideoRule()


def available() -> bool:
    try:
        import vpdq  # noqa: F401
    except ImportError:
        return False
    return True


def looks_like_video(head: bytes) -> bool:
    """Whether a file's first bytes are those of a common video container (MP4/MOV, MKV/WebM, AVI,
    FLV, Ogg, MPEG-PS, ASF, MPEG-TS)."""
    if head[4:8] == _MP4_BRANDS or (head.startswith(b"RIFF") and head[8:12] == b"AVI "):
        return True
    if len(head) > 188 * 2 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return True
    return head.startswith(_VIDEO_MAGIC)


_STDERR_LOCK = threading.Lock()


@contextmanager
def _stderr_caught() -> Iterator[Callable[[], str]]:
    """Hold what is written to file descriptor 2 while vpdq's C++ decoder runs, so that a bad video is
    one error line, not the decoder's too; what was written is given back to stderr afterwards."""
    with _STDERR_LOCK, tempfile.TemporaryFile() as spill:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(spill.fileno(), 2)
        text = ""

        def said() -> str:
            nonlocal text
            spill.seek(0)
            text = spill.read().decode("utf-8", errors="replace")
            return text

        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            spill.seek(0)
            leftover = spill.read()
            if leftover and not text:
                os.write(2, leftover)


def hash_video(path: Path, seconds_per_hash: float = SECONDS_PER_HASH) -> tuple[Frame, ...]:
    """The vPDQ frames of a video file (VideoError when vpdq is missing or the file is no video)."""
    try:
        import vpdq
    except ImportError:
        raise VideoError("video hashing needs the optional vpdq package: pip install 'kizuna[video]'") from None
    with _stderr_caught() as said:
        try:
            features = vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash, thread_count=1)
        except Exception:  # vpdq raises a bare Exception, and its decoder writes the reason to fd 2
            reason = said().rpartition(":")[2].strip() or "cannot be decoded"
            raise VideoError(f"corrupt video: {' '.join(reason.split())[:200]}") from None
    frames = tuple(Frame(f.frame_number, int(f.quality), vpdq.hash_to_hex(f.hash), round(float(f.timestamp), 3))
                   for f in features)
    if not frames:
        raise VideoError("corrupt video: no frame could be decoded")
    return frames


@lru_cache(maxsize=1024)
def usable(text: str) -> np.ndarray:
    """The distinct frame hashes of quality ≥ 50, packed (n, 32) uint8, as vPDQ's matching uses them."""
    hashes = sorted({f.hash for f in parse_frames(text) if f.quality >= MIN_QUALITY})
    packed = np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(-1, 32)
    packed.setflags(write=False)
    return packed


@dataclass(frozen=True)
class Comparison:
    query_percent: float
    target_percent: float
    distance: int  # the largest best-frame distance among the query's matched frames

    def matches(self, rule: VideoRule) -> bool:
        return self.query_percent > 0 and self.query_percent >= rule.query_percent \
            and self.target_percent >= rule.target_percent


def nearest_frame(image: str, frames: str) -> tuple[int, Frame] | None:
    """The frame of a vPDQ hash (quality ≥ 50) nearest a PDQ hash, with its distance; None without any."""
    wanted = int(image, 16)
    best: tuple[int, Frame] | None = None
    for frame in parse_frames(frames):
        if frame.quality >= MIN_QUALITY:
            distance = (int(frame.hash, 16) ^ wanted).bit_count()
            if best is None or (distance, frame.number) < (best[0], best[1].number):
                best = (distance, frame)
    return best


def compare(query: np.ndarray, target: np.ndarray, threshold: int) -> Comparison:
    """vPDQ's brute-force comparison of two videos' usable frames at a frame distance threshold."""
    if not len(query) or not len(target):
        return Comparison(0.0, 0.0, 0)
    distances = np.bitwise_count(query[:, None, :] ^ target[None, :, :]).sum(axis=2, dtype=np.int32)
    close = distances <= threshold
    query_hit, target_hit = close.any(axis=1), close.any(axis=0)
    best = distances.min(axis=1)[query_hit]
    return Comparison(round(100.0 * float(query_hit.mean()), 2), round(100.0 * float(target_hit.mean()), 2),
                      int(best.max()) if len(best) else 0)
