"""Optional second opinion on a trigger: ask GitHub for the actor's repository permission.

``author_association`` (what :mod:`orchestrator.events` checks) is what the payload says about
the actor; the collaborator-permission API says what the actor may do *now* (a member removed
since, an org member without write access). Only a request that would act is checked, and the
check itself is a read: an untrusted trigger still causes no write at all.
"""

from __future__ import annotations

from orchestrator.contracts import Request
from orchestrator.github.client import GitHubClient

__all__ = ["PERMISSION_RANK", "confirm_trigger"]

#: Permission names (``role_name`` or ``permission``) from weakest to strongest.
PERMISSION_RANK: dict[str, int] = {
    "none": 0,
    "read": 1,
    "triage": 2,
    "write": 3,
    "maintain": 4,
    "admin": 5,
}


def confirm_trigger(client: GitHubClient, request: Request, *, minimum: str = "write") -> Request:
    """``request`` unchanged when its actor has at least ``minimum``, else refused (act=False).

    Requests that do not act, and allowed bots (their trust comes from configuration), are
    returned as they are without a call.
    """
    if not request.act or not request.actor or request.source in ("cli", "api", "schedule"):
        return request
    login = request.actor
    if (request.sender_type or "").lower() == "bot" or login.endswith("[bot]"):
        return request
    permission = client.collaborator_permission(login).lower()
    if PERMISSION_RANK.get(permission, 0) >= PERMISSION_RANK.get(minimum, 3):
        return request
    reason = (
        f"@{login} has '{permission}' permission on {client.repository}; "
        f"'{minimum}' or more is needed to trigger the orchestrator"
    )
    return request.model_copy(update={"act": False, "trusted": False, "reason": reason})
