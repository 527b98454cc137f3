"""Small real videos for the vPDQ tests, made with ffmpeg's test sources (under a second to make).

Tests that need them are skipped only where neither vpdq nor ffmpeg is expected: in CI (CI=true)
both are installed by .ci/run, so there a missing one fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kizuna.hashes import video


def need_video_tools() -> None:
    missing = [name for name, there in (("vpdq", video.available()), ("ffmpeg", shutil.which("ffmpeg") is not None))
               if not there]
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"{' and '.join(missing)} not installed (pip install 'kizuna[video]'; apt-get install ffmpeg)")
    assert not missing, f"{missing} must be installed in CI (.ci/run)"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=60)


def make_videos(folder: Path) -> dict[str, Path]:
    """``banked`` (3 s of a moving test pattern, 4 frames a second), ``reencoded`` (the same video
    shrunk to 75% and re-encoded at a much lower quality) and ``other`` (a different video)."""
    need_video_tools()
    folder.mkdir(parents=True, exist_ok=True)
    banked, reencoded, other = folder / "banked.mp4", folder / "reencoded.mp4", folder / "other.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=256x192:rate=4:duration=3", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", str(banked))
    _ffmpeg("-i", str(banked), "-vf", "scale=192:144", "-c:v", "libx264", "-crf", "35", str(reencoded))
    _ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=256x192:rate=4", "-t", "3", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", str(other))
    return {"banked": banked, "reencoded": reencoded, "other": other}
