"""`ops create` checks before it makes anything, and names work in Japanese as in English."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.ops.assets import add_assets, normalise_domain
from kizuna.ops.reading import since_micros
from kizuna.ops.records import load_all
from kizuna.ops.workspace import create_operation


@pytest.fixture
def node(tmp_path: Path) -> Node:
    made = Node.init(tmp_path / "node", org_name="Home", country="GBR")
    made.create_organisation("JPCERT/CC", "JPN")
    return made


@pytest.mark.parametrize(("end", "grace"), [("9999-12-31", 7), ("2027-01-02", 99_999_999_999)])
def test_an_end_past_year_9999_is_refused_before_anything_is_made(node: Node, end: str, grace: int) -> None:
    try:
        with pytest.raises(AdminError, match=f"--to {end} with --grace-days {grace} ends after the year 9999"):
            create_operation(node, "Far", "2027-01-01", end, ["JPCERT/CC"], grace_days=grace)
        assert [c.alias for c in node.store.list_collections()] == []
        assert node.policy.agreement("ops-far-jpcert-cc") is None and load_all(node.store) == {}
        # Nothing half-made stands in the way of the operation asked for properly.
        operation, _ = create_operation(node, "Far", "2027-01-01", "2027-01-02", ["JPCERT/CC"])
        assert operation.slug == "far"
    finally:
        node.close()


def test_names_in_japanese_keep_their_own_key_and_domains_become_a_labels(node: Node) -> None:
    try:
        tokyo, _ = create_operation(node, "東京2027", "2027-01-01", "2027-01-02", ["JPCERT/CC"])
        osaka, _ = create_operation(node, "大阪 2027", "2027-01-01", "2027-01-02", ["JPCERT/CC"])
        assert (tokyo.slug, osaka.slug) == ("東京2027", "大阪-2027")
        # What a resolver logs for 東京.example, and what the watch must therefore hold.
        assert normalise_domain("東京.Example.") == "xn--1lqs71d.example"
        added = add_assets(node, tokyo, [("domain", "東京.example")])
        assert [a["value"] for a in added.added] == ["xn--1lqs71d.example"]
        with pytest.raises(AdminError, match="is not a domain name"):
            normalise_domain("xn--.example")
        with pytest.raises(AdminError, match="an xn-- label that IDNA cannot read"):
            normalise_domain("xn--zz.example")  # it was taken, and its lookalikes then failed as bad UTF-8
        assert normalise_domain("XN--1lqs71d.example") == "xn--1lqs71d.example"
    finally:
        node.close()


def test_a_since_reaching_back_before_year_1_is_refused_not_an_internal_error() -> None:
    with pytest.raises(AdminError, match="--since '99999999999d' is out of range"):
        since_micros("99999999999d")
    with pytest.raises(AdminError, match="--since '99999999999999999999h' is out of range"):
        since_micros("99999999999999999999h")  # past 64 bits too: a duration out of range, not "no duration"
    assert since_micros("1000d") is not None


def test_the_own_organisation_is_no_partner_and_a_partner_named_twice_is_one(node: Node) -> None:
    try:
        with pytest.raises(AdminError, match="'Home' is this node's own organisation"):
            create_operation(node, "Own", "2027-01-01", "2027-01-02", ["JPCERT/CC", "Home"])
        assert [c.alias for c in node.store.list_collections()] == []  # checked before anything was made
        jpcert = node.store.get_organisation("JPCERT/CC")
        assert jpcert is not None
        operation, _ = create_operation(node, "Twice", "2027-01-01", "2027-01-02", ["JPCERT/CC", jpcert.id])
        assert [p.organisation for p in operation.partners] == ["JPCERT/CC"]
    finally:
        node.close()
