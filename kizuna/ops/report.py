"""The shift hand-over report: what happened in an operation since a moment, as STIX and as Markdown.

The STIX ``report`` (in the incidents collection, under the default marking) refers to the incidents
and the objects that raised alerts, so partners receive it under the usual policy; with Japanese, a
``language-content`` object carries the translated name and description. The Markdown is for the
people taking over the shift: incidents and their status, alerts, the indicators most sighted,
what each partner sent, each partner node's sync health (core/dashboard.py, as the console's board
shows it), and activity per hour as a bar chart in text.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kizuna.core.node import Node
from kizuna.core.partner_health import partner_health
from kizuna.ops.alerts import NOT_ACTIVITY, SHIFT_REPORT_MARK, alerts_of
from kizuna.ops.incidents import _base, _store
from kizuna.ops.reading import latest_objects
from kizuna.ops.records import Operation
from kizuna.ops.report_html import to_html
from kizuna.stix.timestamps import format_timestamp, now_micros

_LABELS = {
    "en": {"title": "Shift report", "since": "Since", "incidents": "Incidents", "alerts": "Alerts on protected assets",
           "top": "Most sighted indicators", "partners": "Partner activity", "activity": "Activity per hour",
           "none": "none", "status": "status", "assigned": "assigned to", "objects": "objects",
           "sightings": "sightings", "unsigned": "(no producer)", "sync": "Sync health",
           "no_sync": "no partner nodes configured", "failures": "failures", "last_success": "last success",
           "summary": "{i} incidents, {a} alerts, {o} new objects"},
    "ja": {"title": "シフトレポート", "since": "対象期間の開始", "incidents": "インシデント",
           "alerts": "保護資産に関するアラート", "top": "サイティングの多い指標", "partners": "パートナーの活動",
           "activity": "時間ごとの活動",
           "none": "なし", "status": "状態", "assigned": "担当", "objects": "オブジェクト",
           "sightings": "サイティング", "unsigned": "(作成者なし)", "sync": "同期の状態",
           "no_sync": "パートナーノードの設定なし", "failures": "連続失敗", "last_success": "最終成功",
           "summary": "インシデント {i} 件、アラート {a} 件、新規オブジェクト {o} 件"},
}


@dataclass
class ShiftReport:
    stix: list[dict[str, Any]]  # the report, and its language-content when translated
    markdown: str
    html: str


def shift_report(node: Node, operation: Operation, since: int, lang: str = "en") -> ShiftReport:
    words = _LABELS[lang]
    names = {o.id: o.name for o in node.store.list_organisations()}
    incidents: list[dict[str, Any]] = []
    sightings: Counter[str] = Counter()
    indicators: dict[str, str] = {}
    producers: Counter[str] = Counter()
    hours: Counter[str] = Counter()
    new_objects = 0
    for role in ("intel", "incidents"):
        collection = node.find_collection(operation.collections[role])
        for added, obj in latest_objects(node, collection):
            kind = obj.get("type")
            if kind in NOT_ACTIVITY or obj.get(SHIFT_REPORT_MARK):
                continue
            if kind == "indicator":
                indicators[obj["id"]] = obj.get("name") or obj.get("pattern", obj["id"])
            if added <= since:
                continue
            new_objects += 1
            hours[format_timestamp(added)[:13]] += 1
            producer = obj.get("created_by_ref")
            producers[names.get(producer, producer) if producer else words["unsigned"]] += 1
            if kind == "incident":
                incidents.append(obj)
            elif kind == "sighting":
                sightings[obj.get("sighting_of_ref", "")] += int(obj.get("count", 1))
    alerts = alerts_of(node, operation, since)
    summary = words["summary"].format(i=len(incidents), a=len(alerts), o=new_objects)
    title = f"{words['title']}: {operation.name}"
    lines = [f"# {title}", "", f"{words['since']}: {format_timestamp(since)[:19]}Z", "", summary, "",
             f"## {words['incidents']}", ""]
    lines += [f"- {i['name']} — {words['status']}: {i.get('x_kizuna_status', '-')}, {words['assigned']}: "
              f"{i.get('x_kizuna_assigned_to', '-')}" for i in incidents] or [f"- {words['none']}"]
    lines += ["", f"## {words['alerts']}", ""]
    lines += [f"- {a.rule}: {a.asset} ← {a.object_type} {a.object_name or a.object_id} ({a.producer or '-'})"
              for a in alerts] or [f"- {words['none']}"]
    lines += ["", f"## {words['top']}", ""]
    lines += [f"- {indicators.get(ref, ref)}: {count} {words['sightings']}"
              for ref, count in sightings.most_common(10)] or [f"- {words['none']}"]
    lines += ["", f"## {words['partners']}", ""]
    lines += [f"- {who}: {count} {words['objects']}"
              for who, count in producers.most_common()] or [f"- {words['none']}"]
    lines += ["", f"## {words['sync']}", ""]
    lines += [f"- {h.name}: {h.state}, {words['last_success']}: {h.last_success or '-'}, "
              f"{words['failures']}: {h.consecutive_failures}"
              for h in partner_health(node)] or [f"- {words['no_sync']}"]
    lines += ["", f"## {words['activity']}", "", "```"]
    peak = max(hours.values(), default=1)
    lines += [f"{hour}:00Z {'#' * max(1, round(30 * count / peak))} {count}" for hour, count in sorted(hours.items())]
    lines += ["```", ""]

    refs = [i["id"] for i in incidents] + list(dict.fromkeys(a.object_id for a in alerts))
    report = {**_base(node, operation, "report"), "name": f"{_LABELS['en']['title']}: {operation.name}",
              "description": _LABELS["en"]["summary"].format(i=len(incidents), a=len(alerts), o=new_objects),
              "report_types": ["threat-report"], "object_refs": refs or [operation.grouping_id],
              SHIFT_REPORT_MARK: True}
    report["published"] = report["created"]
    stix = [report]
    if lang != "en":
        translated = {lang: {"name": title, "description": summary}}
        stix.append({**_base(node, operation, "language-content"), "object_ref": report["id"],
                     "object_modified": report["modified"], "contents": translated})
        stix[-1]["id"] = f"language-content--{uuid.uuid4()}"
    _store(node, operation, stix)
    markdown = "\n".join(lines)
    return ShiftReport(stix, markdown, to_html(markdown, dict(hours), lang))


def default_since() -> int:
    return now_micros() - 12 * 3600 * 1_000_000
