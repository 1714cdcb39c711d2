"""Every PynamoDB model calls DynamoDB through one botocore client per container.

PynamoDB builds a client per model class, each in a botocore session of its own
(~0.1 s apiece: botocore reads its endpoint and service JSON again per session);
a container's first relayed message touches about ten models. ``Base`` hands every
model the container's one client (``models.shared_client``)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session

from chalicelib import models
from tests.integration.test_relay import addr, mail
from tests.integration.world import World


def test_a_relayed_message_builds_one_dynamodb_client_for_every_model(world: World, monkeypatch: Any) -> None:
    chat = world.open_chat(["registered", "confirmed", "attended"])
    built: list[str] = []
    create = botocore.session.Session.create_client

    def counting(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        boto3_session = boto3.DEFAULT_SESSION is not None and self is boto3.DEFAULT_SESSION._session
        if service_name == "dynamodb" and not boto3_session:
            built.append(service_name)
        return create(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    models.bind()  # a fresh container: no model has a connection yet

    outcome = world.receive(mail(addr("ann0"), chat["address"]), sender=addr("ann0"), to=[chat["address"]])
    assert outcome == {"outcomes": ["relayed"]}
    world.drain()
    assert len(world.relayed()) >= 3

    # PynamoDB's clients (boto3's, for the idempotency table, are cached apart).
    assert built == ["dynamodb"]
    clients = {id(model._get_connection().connection.client) for model in models.ALL_MODELS}
    assert clients == {id(models.transactions().client)}

    # A thread of the fan-out's pool sees the same client.
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(id(models.Chat._get_connection().connection.client)))
    worker.start()
    worker.join()
    assert seen == [id(models.transactions().client)]
