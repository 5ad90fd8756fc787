"""A permit's states and who may move it between them.

    draft --submit--> pending --approve (each step in order)--> ... --approve (last step)--> approved
                      pending --reject (reason)--> rejected
                      pending --send back (reason)--> changes_requested --resubmit--> pending (step 1 again)
    draft / pending / changes_requested / approved --cancel (the applicant)--> cancelled
    approved --revoke (FM staff, reason)--> revoked

Each step of the approval chain is decided by one person, who must be eligible for that step (the
named person, one of the named group, or a holder of the step's role), may not be the applicant,
and may not have approved an earlier step of the same round: a two-approver chain means two people.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Status(StrEnum):
    DRAFT = "draft"
    PENDING = "pending"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REVOKED = "revoked"


class Action(StrEnum):
    """What a step of the permit's history records."""

    SUBMITTED = "submitted"
    RESUBMITTED = "resubmitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    SENT_BACK = "sent_back"
    CANCELLED = "cancelled"
    REVOKED = "revoked"


EDITABLE: Final = frozenset({Status.DRAFT, Status.CHANGES_REQUESTED})
CANCELLABLE: Final = frozenset({Status.DRAFT, Status.PENDING, Status.CHANGES_REQUESTED, Status.APPROVED})
CLOSED: Final = frozenset({Status.REJECTED, Status.CANCELLED, Status.REVOKED})
