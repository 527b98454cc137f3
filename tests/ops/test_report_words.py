"""The Japanese shift report names statuses, determinations, alert rules, object types and partner sync
health with the console's words (the same catalog entries its pages use), not the English identifiers."""

from __future__ import annotations

from kizuna.core.node import Node
from kizuna.federation.admin import add_partner
from kizuna.ops.incidents import add_incident
from kizuna.ops.lookalikes import lookalikes_of
from kizuna.ops.records import Operation
from kizuna.ops.report import shift_report
from kizuna.web.i18n import translations
from tests.ops.conftest import indicator, sighting


def test_the_japanese_report_uses_the_consoles_words(room: tuple[Node, Operation, str]) -> None:
    node, operation, _ = room
    soc = next(o.id for o in node.store.list_organisations() if o.name == "Games SOC")
    lookalike = sorted(d for d, fuzzer in lookalikes_of("games2027.example").items() if fuzzer == "homoglyph")[0]
    phish = indicator(f"pay.{lookalike}", created_by_ref=soc, name="Ticketing lookalike")
    node.import_objects(node.find_collection(operation.collections["intel"]),
                        [phish, sighting(phish["id"], created_by_ref=soc)])
    add_incident(node, operation, "Ticket fraud", assign="Games SOC", determination="successful-attempt")
    add_partner(node, "tokyo-hub", "https://hub.example/api1/", (f"{operation.collections['intel']}=intel:pull",))

    markdown = shift_report(node, operation, 0, "ja", translations("ja").gettext).markdown
    assert "- Ticket fraud — 状態: オープン, 判定: 攻撃成功, 担当: Games SOC" in markdown
    assert "- 類似: games2027.example ← 指標 Ticketing lookalike (Games SOC)" in markdown
    assert "- 関係: games2027.example ← サイティング " in markdown
    assert "- tokyo-hub: 未同期, " in markdown
    assert "← sighting" not in markdown and "- lookalike:" not in markdown and ": successful-attempt" not in markdown
    english = shift_report(node, operation, 0).markdown
    assert "- Ticket fraud — status: open, determination: successful attempt, assigned to: Games SOC" in english
    assert "- lookalike: games2027.example ← Indicator Ticketing lookalike (Games SOC)" in english
    assert "- tokyo-hub: Not synced yet, " in english
