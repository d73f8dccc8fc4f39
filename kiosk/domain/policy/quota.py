"""Weekly quotas (R17), larger for parents.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from kiosk.domain.model import (
    Booking,
    Category,
    Contact,
    FacilitySettings,
    Inmate,
    Relation,
)
from kiosk.domain.policy.verdicts import Deny, deny
from kiosk.domain.reasons import Reason
from kiosk.domain.weeks import week_usage

# --- Quota (R17) ------------------------------------------------------------


def quota_minutes(settings: FacilitySettings, contact: Contact) -> int | None:
    """The weekly quota that applies to calls with ``contact``; None: no quota (R17, R2)."""
    if not contact.category.counts_toward_quota:
        return None
    if contact.relation is Relation.CHILD:
        return settings.parent_weekly_quota_minutes  # R17: parents get more
    return settings.weekly_quota_minutes


def quota_refuses(
    settings: FacilitySettings,
    inmate: Inmate,
    contact: Contact,
    start: datetime,
    duration: timedelta,
    week_bookings: Sequence[Booking],
    categories: Mapping[str, Category],
    exclude_id: str | None = None,
) -> Deny | None:
    quota = quota_minutes(settings, contact)
    if quota is None:
        return None

    def personal(b: Booking) -> bool:
        # A booking whose contact's category is unknown counts: deny by default.
        category = categories.get(b.contact_id, Category.PERSONAL)
        return category.counts_toward_quota

    used = week_usage(inmate.id, start, week_bookings, personal, exclude_id=exclude_id)
    if used + duration > timedelta(minutes=quota):
        left = max(timedelta(), timedelta(minutes=quota) - used)
        return deny(
            Reason.QUOTA_EXHAUSTED,
            f"{int(left.total_seconds() // 60)} of {quota} minutes left that week",
        )
    return None
