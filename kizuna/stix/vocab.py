"""STIX 2.1 type tables: which types the specification defines and what each one requires.

The tables are plain data so that validation can precompute per-type plans at import time and the
hot path only does dictionary look-ups. Section numbers refer to STIX 2.1 OS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: STIX Domain Objects (§4).
SDO_TYPES: Final = frozenset(
    {
        "attack-pattern",
        "campaign",
        "course-of-action",
        "grouping",
        "identity",
        "incident",
        "indicator",
        "infrastructure",
        "intrusion-set",
        "location",
        "malware",
        "malware-analysis",
        "note",
        "observed-data",
        "opinion",
        "report",
        "threat-actor",
        "tool",
        "vulnerability",
    }
)

#: STIX Relationship Objects (§5).
SRO_TYPES: Final = frozenset({"relationship", "sighting"})

#: STIX Cyber-observable Objects (§6).
SCO_TYPES: Final = frozenset(
    {
        "artifact",
        "autonomous-system",
        "directory",
        "domain-name",
        "email-addr",
        "email-message",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "network-traffic",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
    }
)

#: STIX Meta Objects (§7).
META_TYPES: Final = frozenset({"marking-definition", "language-content", "extension-definition"})

SPEC_TYPES: Final = SDO_TYPES | SRO_TYPES | SCO_TYPES | META_TYPES

#: Types that MUST carry ``spec_version`` (everything except SCOs, where it is optional).
SPEC_VERSION_REQUIRED_TYPES: Final = SDO_TYPES | SRO_TYPES | META_TYPES

_SDO_COMMON_REQUIRED: Final = ("type", "spec_version", "id", "created", "modified")
_SCO_COMMON_REQUIRED: Final = ("type", "id")

#: Every property a type MUST carry, common ones included (§3.2 and the per-type sections).
REQUIRED_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "attack-pattern": (*_SDO_COMMON_REQUIRED, "name"),
    "campaign": (*_SDO_COMMON_REQUIRED, "name"),
    "course-of-action": (*_SDO_COMMON_REQUIRED, "name"),
    "grouping": (*_SDO_COMMON_REQUIRED, "context", "object_refs"),
    "identity": (*_SDO_COMMON_REQUIRED, "name"),
    "incident": (*_SDO_COMMON_REQUIRED, "name"),
    "indicator": (*_SDO_COMMON_REQUIRED, "pattern", "pattern_type", "valid_from"),
    "infrastructure": (*_SDO_COMMON_REQUIRED, "name"),
    "intrusion-set": (*_SDO_COMMON_REQUIRED, "name"),
    "location": _SDO_COMMON_REQUIRED,
    "malware": (*_SDO_COMMON_REQUIRED, "is_family"),
    "malware-analysis": (*_SDO_COMMON_REQUIRED, "product"),
    "note": (*_SDO_COMMON_REQUIRED, "content", "object_refs"),
    "observed-data": (*_SDO_COMMON_REQUIRED, "first_observed", "last_observed", "number_observed"),
    "opinion": (*_SDO_COMMON_REQUIRED, "opinion", "object_refs"),
    "report": (*_SDO_COMMON_REQUIRED, "name", "published", "object_refs"),
    "threat-actor": (*_SDO_COMMON_REQUIRED, "name"),
    "tool": (*_SDO_COMMON_REQUIRED, "name"),
    "vulnerability": (*_SDO_COMMON_REQUIRED, "name"),
    "relationship": (*_SDO_COMMON_REQUIRED, "relationship_type", "source_ref", "target_ref"),
    "sighting": (*_SDO_COMMON_REQUIRED, "sighting_of_ref"),
    "artifact": _SCO_COMMON_REQUIRED,
    "autonomous-system": (*_SCO_COMMON_REQUIRED, "number"),
    "directory": (*_SCO_COMMON_REQUIRED, "path"),
    "domain-name": (*_SCO_COMMON_REQUIRED, "value"),
    "email-addr": (*_SCO_COMMON_REQUIRED, "value"),
    "email-message": (*_SCO_COMMON_REQUIRED, "is_multipart"),
    "file": _SCO_COMMON_REQUIRED,
    "ipv4-addr": (*_SCO_COMMON_REQUIRED, "value"),
    "ipv6-addr": (*_SCO_COMMON_REQUIRED, "value"),
    "mac-addr": (*_SCO_COMMON_REQUIRED, "value"),
    "mutex": (*_SCO_COMMON_REQUIRED, "name"),
    "network-traffic": (*_SCO_COMMON_REQUIRED, "protocols"),
    "process": _SCO_COMMON_REQUIRED,
    "software": (*_SCO_COMMON_REQUIRED, "name"),
    "url": (*_SCO_COMMON_REQUIRED, "value"),
    "user-account": _SCO_COMMON_REQUIRED,
    "windows-registry-key": _SCO_COMMON_REQUIRED,
    "x509-certificate": _SCO_COMMON_REQUIRED,
    # Marking definitions are not versioned: no ``modified`` (§7.2.1).
    "marking-definition": ("type", "spec_version", "id", "created"),
    "language-content": (*_SDO_COMMON_REQUIRED, "object_ref", "contents"),
    "extension-definition": (
        *_SDO_COMMON_REQUIRED,
        "created_by_ref",
        "name",
        "schema",
        "version",
        "extension_types",
    ),
}

#: "At least one of these groups MUST be fully present" rules, e.g. a file needs hashes or a name.
AT_LEAST_ONE_OF: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "location": (("region",), ("country",), ("latitude", "longitude")),
    "malware-analysis": (("result",), ("analysis_sco_refs",)),
    "observed-data": (("objects",), ("object_refs",)),
    "file": (("hashes",), ("name",)),
    "network-traffic": (("src_ref",), ("dst_ref",)),
    "artifact": (("payload_bin",), ("url", "hashes")),
}

#: SCOs that MUST carry at least one property of their own besides the common ones (§6).
NEEDS_OWN_PROPERTY: Final = frozenset({"process", "user-account", "windows-registry-key", "x509-certificate"})

#: Properties forbidden on a type.
FORBIDDEN_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "marking-definition": ("modified", "revoked"),
}

#: Timestamp-valued properties per type (common ``created``/``modified`` are added by the caller).
TIMESTAMP_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "campaign": ("first_seen", "last_seen"),
    "indicator": ("valid_from", "valid_until"),
    "infrastructure": ("first_seen", "last_seen"),
    "intrusion-set": ("first_seen", "last_seen"),
    "malware": ("first_seen", "last_seen"),
    "malware-analysis": ("submitted", "analysis_started", "analysis_ended"),
    "observed-data": ("first_observed", "last_observed"),
    "report": ("published",),
    "threat-actor": ("first_seen", "last_seen"),
    "relationship": ("start_time", "stop_time"),
    "sighting": ("first_seen", "last_seen"),
    "language-content": ("object_modified",),
    "directory": ("ctime", "mtime", "atime"),
    "email-message": ("date",),
    "file": ("ctime", "mtime", "atime"),
    "network-traffic": ("start", "end"),
    "process": ("created_time",),
    "user-account": (
        "account_created",
        "account_expires",
        "credential_last_changed",
        "account_first_login",
        "account_last_login",
    ),
    "windows-registry-key": ("modified_time",),
    "x509-certificate": ("validity_not_before", "validity_not_after"),
}

#: Ordering rules: (later, earlier, strictly_later). ``modified >= created`` applies to every type.
TIMESTAMP_ORDER: Final[dict[str, tuple[tuple[str, str, bool], ...]]] = {
    "campaign": (("last_seen", "first_seen", False),),
    "indicator": (("valid_until", "valid_from", True),),
    "infrastructure": (("last_seen", "first_seen", False),),
    "intrusion-set": (("last_seen", "first_seen", False),),
    "malware": (("last_seen", "first_seen", False),),
    "threat-actor": (("last_seen", "first_seen", False),),
    "observed-data": (("last_observed", "first_observed", False),),
    "relationship": (("stop_time", "start_time", True),),
    "sighting": (("last_seen", "first_seen", False),),
    "network-traffic": (("end", "start", False),),
}

#: Reference properties whose target type is fixed by the specification.
REF_TARGET_TYPES: Final[dict[str, frozenset[str]]] = {
    "created_by_ref": frozenset({"identity"}),
    "object_marking_refs": frozenset({"marking-definition"}),
    "marking_ref": frozenset({"marking-definition"}),
    "observed_data_refs": frozenset({"observed-data"}),
    "where_sighted_refs": frozenset({"identity", "location"}),
}

#: Common properties shared by SDOs/SROs/meta objects (§3.2) and SCOs (§6.1).
COMMON_PROPERTIES: Final = frozenset(
    {
        "type",
        "spec_version",
        "id",
        "created_by_ref",
        "created",
        "modified",
        "revoked",
        "labels",
        "confidence",
        "lang",
        "external_references",
        "object_marking_refs",
        "granular_markings",
        "extensions",
        "defanged",
    }
)

#: Boolean-valued properties (any type that defines them).
BOOLEAN_PROPERTIES: Final = frozenset(
    {
        "revoked",
        "defanged",
        "is_family",
        "is_multipart",
        "is_active",
        "is_hidden",
        "is_self_signed",
        "is_service_account",
        "is_privileged",
        "can_escalate_privs",
        "is_disabled",
        "summary",
    }
)

#: String-valued properties that every spec type defining them types as a plain string.
STRING_PROPERTIES: Final = frozenset(
    {
        "name",
        "description",
        "pattern",
        "pattern_type",
        "pattern_version",
        "relationship_type",
        "context",
        "content",
        "abstract",
        "opinion",
        "product",
        "lang",
        "definition_type",
        "schema",
        "version",
    }
)

#: Reference properties the specification defines (on any object or extension).
REFERENCE_PROPERTIES: Final = frozenset(
    {
        "created_by_ref",
        "object_marking_refs",
        "object_ref",
        "object_refs",
        "source_ref",
        "target_ref",
        "sighting_of_ref",
        "observed_data_refs",
        "where_sighted_refs",
        "sample_refs",
        "sample_ref",
        "analysis_sco_refs",
        "host_vm_ref",
        "operating_system_ref",
        "installed_software_refs",
        "src_ref",
        "dst_ref",
        "src_payload_ref",
        "dst_payload_ref",
        "encapsulates_refs",
        "encapsulated_by_ref",
        "from_ref",
        "sender_ref",
        "to_refs",
        "cc_refs",
        "bcc_refs",
        "raw_email_ref",
        "body_raw_ref",
        "parent_directory_ref",
        "contains_refs",
        "content_ref",
        "resolves_to_refs",
        "belongs_to_ref",
        "belongs_to_refs",
        "opened_connection_refs",
        "creator_user_ref",
        "image_ref",
        "parent_ref",
        "child_refs",
    }
)

#: Kizuna's custom indicator property naming the MISP warninglists its value is on (flagged at import).
#: It lives here, below both, so that the converters that set it and the matcher that honours it agree.
WARNINGLIST_PROPERTY: Final = "x_kizuna_warninglists"
#: Kizuna's custom indicator property (``true``) for an indicator its producer shared as not for detection: a MISP
#: attribute with ``to_ids`` off that misp-stix still writes as an indicator (a Snort, YARA or Sigma rule). The
#: matchers and the feeds leave it out; a MISP export writes ``to_ids`` off again.
NOT_FOR_DETECTION_PROPERTY: Final = "x_kizuna_not_for_detection"


def shared_not_for_detection(indicator: Mapping[str, Any]) -> bool:
    """Whether the indicator's producer shared it for context only (`NOT_FOR_DETECTION_PROPERTY` is ``true``):
    the matcher, the YARA scanner and the feeds all leave such an indicator out, by this one test."""
    return indicator.get(NOT_FOR_DETECTION_PROPERTY) is True
