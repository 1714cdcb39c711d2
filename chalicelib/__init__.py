"""Muster: anonymized email group chats for volunteer shifts.

Layers (see docs/architecture.md): ``blueprints`` (thin entry points) ->
``services`` (domain) -> ``adapters`` (AWS) and ``models`` (PynamoDB); the pure
relay core lives in ``relay`` and imports nothing from AWS.
"""
