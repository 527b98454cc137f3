"""The shift report's partner activity counts what the operation's partners produced: the host's own
objects and objects without a producer (observables, say) count in the summary and per hour only."""

from __future__ import annotations

from kizuna.core.node import Node
from kizuna.ops.records import Operation
from kizuna.ops.report import shift_report
from kizuna.web.i18n import translations
from tests.ops.conftest import indicator


def test_partner_activity_lists_the_operations_partners_only(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    soc = next(o.id for o in node.store.list_organisations() if o.name == "Games SOC")
    outsider = node.create_organisation("Outside CERT", "FRA")["id"]
    observable = {"type": "domain-name", "spec_version": "2.1", "value": "plain.example",
                  "id": "domain-name--0f5f3f4e-3c1d-5b8e-9a55-3f0e4b5f1a11"}
    node.import_objects(node.find_collection(operation.collections["intel"]), [
        indicator("a.example", created_by_ref=soc), indicator("b.example", created_by_ref=soc),
        indicator("c.example", created_by_ref=node.home_organisation_id), indicator("d.example"),
        indicator("e.example", created_by_ref=outsider), observable])

    english = shift_report(node, operation, 0).markdown
    assert "## Partner activity\n\n- Games SOC: 2 objects\n\n## " in english
    assert "new objects: 6" in english  # everything still counts in the summary
    japanese = shift_report(node, operation, 0, "ja", translations("ja").gettext).markdown
    assert "## パートナーの活動\n\n- Games SOC: 2 オブジェクト\n\n## " in japanese
    assert "(作成者なし)" not in japanese and "Host CERT" not in japanese
