"""The words a reader sees for identifiers: STIX object types, alert rules, incident statuses and
determinations, partner sync health. English msgids of the console's catalog (kizuna/web/locale),
translated where they are shown: by the console's pages, and by the shift report (kizuna/ops, which may
not import the console), so both say the same thing in each language from this one table.

The STIX type itself (``threat-actor``) is an identifier and is shown as it is next to the name; the
names use the terms of docs/glossary-ja.md. ``N_`` only marks a string for extraction.
"""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    return message


TYPE_NAMES = {
    "attack-pattern": N_("Attack pattern"),
    "campaign": N_("Campaign"),
    "course-of-action": N_("Course of action"),
    "grouping": N_("Grouping"),
    "identity": N_("Identity"),
    "incident": N_("Incident"),
    "indicator": N_("Indicator"),
    "infrastructure": N_("Infrastructure"),
    "intrusion-set": N_("Intrusion set"),
    "location": N_("Location"),
    "malware": N_("Malware"),
    "malware-analysis": N_("Malware analysis"),
    "note": N_("Note"),
    "observed-data": N_("Observed data"),
    "opinion": N_("Opinion"),
    "report": N_("Report"),
    "threat-actor": N_("Threat actor"),
    "tool": N_("Tool"),
    "vulnerability": N_("Vulnerability"),
    "relationship": N_("Relationship"),
    "sighting": N_("Sighting"),
    "marking-definition": N_("Marking definition"),
    "extension-definition": N_("Extension definition"),
    "language-content": N_("Language content"),
    # Cyber-observables (STIX 2.1, section 6), named as the SDOs are rather than by their type ids.
    "artifact": N_("Artifact"),
    "autonomous-system": N_("Autonomous system"),
    "directory": N_("Directory"),
    "domain-name": N_("Domain name"),
    "email-addr": N_("Email address"),
    "email-message": N_("Email message"),
    "file": N_("File"),
    "ipv4-addr": N_("IPv4 address"),
    "ipv6-addr": N_("IPv6 address"),
    "mac-addr": N_("MAC address"),
    "mutex": N_("Mutex"),
    "network-traffic": N_("Network traffic"),
    "process": N_("Process"),
    "software": N_("Software"),
    "url": N_("URL"),
    "user-account": N_("User account"),
    "windows-registry-key": N_("Windows registry key"),
    "x509-certificate": N_("X.509 certificate"),
}

#: Operations: how the alert rules, incident statuses and determinations read.
RULE_NAMES = {"exact": N_("exact"), "containment": N_("containment"), "lookalike": N_("lookalike"),
              "relationship": N_("relationship")}
STATUS_NAMES = {"open": N_("open"), "investigating": N_("investigating"), "contained": N_("contained"),
                "closed": N_("closed")}
#: incident-determination-enum of the Incident Core Extension, as a reader says it.
DETERMINATION_NAMES = {"suspected": N_("suspected"), "successful-attempt": N_("successful attempt"),
                       "failed-attempt": N_("failed attempt"), "blocked": N_("blocked"), "low-value": N_("low value"),
                       "false-positive": N_("false positive")}
#: A partner node's sync health (core/partner_health.py ``HEALTH_ORDER``).
HEALTH_NAMES = {"unusable": N_("Unusable configuration"), "failing": N_("Failing"),
                "interrupted": N_("Interrupted"), "never": N_("Not synced yet"), "syncing": N_("Syncing"),
                "healthy": N_("Healthy")}
