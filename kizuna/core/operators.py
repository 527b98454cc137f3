"""Who may use the console's operator pages: the node administrator, and tokens holding the operator right.

Token rights are otherwise per collection; the operator right is node-level, like the metrics right
(core/health.py), so it is kept in the node's settings as the list of token ids that hold it. Only a
token of the node's own organisation that is not bound to a partner agreement may hold it: a
partner's token, or one reading under an agreement, describes a partner's view, never the node's
configuration. The check is made on every request against the stored setting, so withdrawing the
right (or revoking the token) takes effect at once in every server process.
"""

from __future__ import annotations

import orjson

from kizuna.core.errors import AdminError
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.core.tokens import OPERATORS_SETTING, operator_tokens, refuse_unless_active


def is_operator(node: Node, principal: Principal) -> bool:
    """May ``principal`` see and change the node's partners, agreements, tokens, audit log and imports?"""
    if principal.is_admin:
        return True
    own = principal.organisation_id is not None and principal.organisation_id == node.home_organisation_id
    return own and principal.agreement_id is None and principal.key in operator_tokens(node.store)


def set_operator_right(node: Node, token_id: str, granted: bool, actor: str = NODE_ADMIN.key) -> bool:
    """Grant or withdraw the operator right of a token (audited); whether anything changed."""
    holders = operator_tokens(node.store)
    if granted:
        record = node.store.get_token(token_id)
        if record is None:
            raise AdminError(f"no token {token_id!r}; `kizuna tokens list` shows the tokens")
        refuse_unless_active(record, "it cannot sign in to operate the node")
        if record.organisation_id != node.home_organisation_id:
            raise AdminError(f"token {token_id!r} belongs to another organisation; only the node's own "
                             "organisation operates it")
        if node.store.get_token_agreement(token_id) is not None:
            raise AdminError(f"token {token_id!r} reads under a partner agreement and cannot operate the node")
    if (token_id in holders) == granted:
        return False
    holders = holders | {token_id} if granted else holders - {token_id}
    node.store.set_setting(OPERATORS_SETTING, orjson.dumps(sorted(holders)).decode())
    node.audit.record("operator-right", actor, {"token": token_id, "granted": granted})
    return True
