"""An ApiError built outside the api package: what test_declared_refusals must see."""

from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError

REFUSED = ApiError(Reason.CONFLICT)
