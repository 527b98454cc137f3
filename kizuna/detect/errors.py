"""Errors raised by the detection engine."""

from __future__ import annotations


class DetectError(Exception):
    """Base class for detection engine errors."""


class PatternError(DetectError):
    """The pattern text is not valid STIX 2.1 patterning, or uses an invalid literal."""


class MatchError(DetectError):
    """Matching failed because observation data cannot be compared as the pattern requires."""
