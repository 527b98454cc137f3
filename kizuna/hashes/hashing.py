"""Hashes of media files: PDQ (pdqhash) for images, vPDQ for videos (with the optional ``video``
extra), and MD5 / SHA-256 of the bytes for exact matches.

A file that is neither still gets its exact hashes (a document can be banked by MD5/SHA-256), and so
does a video when vpdq is not installed; a file that claims to be an image or a video but cannot be
decoded is an error, so a corrupt upload never slips through as "no match".
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image, UnidentifiedImageError

from kizuna.core.messages import N_, Message
from kizuna.hashes import video
from kizuna.hashes.signals import MIN_QUALITY, frames_text

# A decompression bomb is refused, not hashed: 100 megapixels is far above any real photo.
Image.MAX_IMAGE_PIXELS = 100_000_000
# File signatures of image formats Pillow decodes: such a file that fails to decode is corrupt.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF", b"II*\x00",
                b"MM\x00*")


class HashingError(ValueError):
    """A file that cannot be hashed as asked (corrupt image, unreadable file)."""


@dataclass(frozen=True)
class MediaHashes:
    md5: str
    sha256: str
    pdq: str | None = None  # None: not an image
    quality: int | None = None
    vpdq: str | None = None  # a video's frames (`signals.frames_text`); None: not a video, or no vpdq here
    is_video: bool = False

    @property
    def pdq_usable(self) -> bool:
        return self.pdq is not None and self.quality is not None and self.quality >= MIN_QUALITY


def pdq_of_image(image: Image.Image) -> tuple[str, int]:
    """PDQ hex and quality of a decoded image.

    The stored pixels are hashed as they are, EXIF orientation ignored: that is what the reference
    hasher (and so every partner's bank) does, and rotating first would move a hash ~128 bits away.
    """
    pixels = np.asarray(image.convert("RGB"))
    bits, quality = pdqhash.compute(pixels)
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def _vpdq(data: bytes, path: Path | None) -> str | None:
    """The vPDQ frames of a video's bytes (hashed from ``path`` when the bytes came from a file)."""
    if not video.available():
        return None
    try:
        if path is not None:
            return frames_text(video.hash_video(path))
        with tempfile.NamedTemporaryFile(prefix="kizuna-video-") as spill:  # the decoder reads files
            spill.write(data)
            spill.flush()
            return frames_text(video.hash_video(Path(spill.name)))
    except video.VideoError as exc:
        raise HashingError(str(exc)) from None


def hash_bytes(data: bytes, path: Path | None = None) -> MediaHashes:
    """The hashes of a file's bytes; ``path``, when they were read from a file, spares a video a copy."""
    if not data:
        # The MD5 and SHA-256 of nothing, banked, would match every empty upload.
        raise HashingError(Message(N_("empty file: no content to hash")))
    md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
    looks_like_image = data.startswith(_IMAGE_MAGIC)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                pdq, quality = pdq_of_image(image)
    except UnidentifiedImageError:
        if looks_like_image:
            raise HashingError(Message(N_("corrupt image: cannot be decoded"))) from None
        if video.looks_like_video(data[:1024]):
            return MediaHashes(md5, sha256, vpdq=_vpdq(data, path), is_video=True)
        return MediaHashes(md5, sha256)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The decoder's own words (English) are kept as a detail after the translated sentence.
        raise HashingError(Message(N_("corrupt image: %(detail)s"), detail=str(exc))) from None
    return MediaHashes(md5, sha256, pdq, quality)


def hash_file(path: Path) -> MediaHashes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HashingError(exc.strerror or str(exc)) from None
    return hash_bytes(data, path)


def media_files(path: Path) -> Iterator[Path]:
    """``path`` itself, or every non-hidden file under a directory (recursively, in a stable order)."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                yield child
    else:
        yield path
