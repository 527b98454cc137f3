"""Who is asking: a token of an organisation, with rights per collection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from kizuna.policy.tlp import TlpLevel
from kizuna.store.base import Collection, Grant


@dataclass(frozen=True, slots=True)
class Principal:
    key: str  # stable identity for cursor binding: the token id, or "admin"
    organisation_id: str | None
    grants: Mapping[int, Grant] = field(default_factory=dict)
    is_admin: bool = False
    #: The partner agreement this token reads under, if it is bound to one.
    agreement_id: str | None = None
    #: The most this read may show, whatever else admits it (``kizuna export --tlp-max``): content marked above
    #: this TLP level is hidden and selectors marked above it are redacted, for every principal, the node's too.
    tlp_ceiling: TlpLevel | None = None

    def can_read(self, collection: Collection) -> bool:
        grant = self.grants.get(collection.pk)
        return self.is_admin or (grant is not None and grant.can_read)

    def can_write(self, collection: Collection) -> bool:
        grant = self.grants.get(collection.pk)
        return self.is_admin or (grant is not None and grant.can_write)

    def sees_collection(self, collection: Collection) -> bool:
        return self.can_read(collection) or self.can_write(collection)


NODE_ADMIN = Principal(key="admin", organisation_id=None, is_admin=True)
#: The key of the operator acting as a token (``kizuna export --as-token-id``), before the token's id.
AS_TOKEN: Final = "admin-as-token:"


def whose_view(principal: Principal) -> str:
    """Whose view of the data ``principal`` reads: its key, but the token's own id for an operator acting as a
    token, whose view is the token's (the key itself stays apart, so audit records never pass for the token's)."""
    return principal.key.removeprefix(AS_TOKEN)


def partner_reader(
    name: str, organisation_id: str | None, agreement_id: str | None, readable_collection_pks: Iterable[int],
) -> Principal:
    """A partner node as a reader of this node, as a push reads for it: its organisation, bound to its
    agreement, read-only."""
    grants = {pk: Grant(pk, True, False) for pk in readable_collection_pks}
    return Principal(key=f"partner:{name}", organisation_id=organisation_id, grants=grants,
                     agreement_id=agreement_id or None)
