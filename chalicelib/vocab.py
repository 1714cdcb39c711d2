"""Product words shared by the models, the boundary schemas and the services.

Kept free of imports so that entry points which never validate a body (the
relay, delivery, schedules) don't pay for pydantic at cold start.
"""

import re

ACTIVE_STATUSES = frozenset({"registered", "confirmed", "attended"})
SIGNUP_STATUSES = ("registered", "confirmed", "attended", "cancelled", "missed", "blocked")

# EventBridge integration events: source and detail-types (events_schema/).
EVENT_SOURCE = "muster.integration"
DETAIL_TYPES = ("EventCancelled", "EventCreated", "EventUpdated", "SignupCreated", "SignupUpdated")

# An integration's own identifier: safe in keys, URLs and schedule names.
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
