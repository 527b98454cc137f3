"""Markings are law: the policy that decides what each principal may see of each object version.

The core calls ``compile_viewer(viewer, ctx, collection_id)`` once per read and then
``policy.decide(obj)`` per object version; see docs/policy.md for the rules.
"""

from kizuna.policy.dangling import embedded_references, filter_batch, hide_dangling
from kizuna.policy.decide import (
    HIDDEN,
    VISIBLE,
    Decision,
    Outcome,
    ViewerPolicy,
    compile_viewer,
    decide,
)
from kizuna.policy.model import (
    Agreement,
    MarkingInfo,
    MarkingKind,
    Organisation,
    PolicyContext,
    PolicyOptions,
    Viewer,
    relay_floor,
    relayed_amber_reach,
)
from kizuna.policy.releasability import (
    RELEASABILITY_EXTENSION_ID,
    build_recipients_marking,
    build_rel_to_marking,
)
from kizuna.policy.tlp import (
    TLP2_IDS,
    Normalisation,
    TlpAliasTable,
    TlpLevel,
    normalise_objects,
    shipped_objects,
)

__all__ = [
    "HIDDEN",
    "RELEASABILITY_EXTENSION_ID",
    "TLP2_IDS",
    "VISIBLE",
    "Agreement",
    "Decision",
    "MarkingInfo",
    "MarkingKind",
    "Normalisation",
    "Organisation",
    "Outcome",
    "PolicyContext",
    "PolicyOptions",
    "relay_floor",
    "relayed_amber_reach",
    "TlpAliasTable",
    "TlpLevel",
    "Viewer",
    "ViewerPolicy",
    "build_recipients_marking",
    "build_rel_to_marking",
    "compile_viewer",
    "decide",
    "embedded_references",
    "filter_batch",
    "hide_dangling",
    "normalise_objects",
    "shipped_objects",
]
