"""The one visibility check.

Every read path — objects, object, versions, manifest, export, and everything added
later — asks :func:`view` what a principal may see of one stored object version, and
serves exactly that.  Marking and partner policy therefore land in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from kizuna.core.principal import Principal
from kizuna.store.base import Collection, VersionRow


@dataclass(frozen=True, slots=True)
class Viewer:
    """A principal reading one collection it has read access to."""

    principal: Principal
    collection: Collection


def view(viewer: Viewer, row: VersionRow) -> bytes | None:
    """The bytes ``viewer`` may receive for ``row``, or None when it is hidden.

    A hidden row must be indistinguishable from an absent one, so callers drop it
    silently: it is not counted, not paged, and not named in any error.
    """
    if not viewer.principal.can_read(viewer.collection):
        return None
    return row.body
