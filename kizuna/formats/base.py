"""What every reader and writer returns: the objects, and an honest account of what was lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Loss:
    """A field of the source that has no place in the output (`ref`: attribute uuid, line, id…)."""

    ref: str
    field: str
    value: Any
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "field": self.field, "value": self.value, "reason": self.reason}


@dataclass(frozen=True)
class Rejected:
    """An input unit (line, attribute, rule) refused as a whole, and why."""

    where: str  # "FILE:LINE", an event/attribute uuid, or a STIX id
    reason: str
    text: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "reason": self.reason, "text": self.text}


@dataclass
class ConversionReport:
    """The result of a conversion: objects produced, plus losses, rejections and converter warnings."""

    format: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Feeds: the earliest instant (µs) after which the output changes by the clock alone (an
    #: indicator's valid_from still to come, or the valid_until of one included); None: never.
    next_change: int | None = None

    def note_change_at(self, micros: int) -> None:
        if self.next_change is None or micros < self.next_change:
            self.next_change = micros

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format, "objects": len(self.objects),
            "losses": [loss.as_json() for loss in self.losses],
            "rejected": [r.as_json() for r in self.rejected],
            "warnings": list(self.warnings),
        }


class FormatError(ValueError):
    """The input as a whole cannot be read in this format (``where`` names file:line or uuid)."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{message}: {where}" if where else message)
        self.message = message
        self.where = where

    def __reduce__(self) -> tuple[type[FormatError], tuple[str, str | None]]:
        # whole from a worker process (core/forked.py): pickled by default, it came back without its where
        return FormatError, (self.message, self.where)
