"""The local twin: all of Muster on one machine (``make dev``).

moto's server stands in for AWS, Chalice's local server serves the API, and only
the *triggers* are emulated: an SMTP listener plays SES receiving, a dispatcher
plays Scheduler, the SQS event source mapping, the sweeper's EventBridge rule and
the integration bus, and an outbox keeps every message SES would have sent.
Every handler that runs is the production one, from ``app.py``.
"""
