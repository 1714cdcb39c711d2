"""The twin's moto changes how fast DynamoDB answers, never what it answers.

``infra.twin.motopatches.partition_queries`` hands moto's ``Table.query`` only the
partition (or the index partition) a Query names; ``fast_attribute_values`` writes
each item's attribute values to JSON directly instead of through moto's shape
walker. The same requests - Queries with range conditions, both orders, paging,
filters, projections, indexes with and without a range key, items missing the index
key; GetItem, BatchGetItem, TransactGetItems, Scan, UpdateItem's ALL_NEW - over
items holding every attribute type (strings, numbers, binaries, the three sets,
nested maps and lists, NULL, BOOL, empty strings and collections) run against one
in-process moto before and after the change, and must answer exactly the same. Runs
in a subprocess, so the patches never reach other tests' moto.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import json, random
import boto3
from moto import mock_aws

def queries():
    q = []
    for pk in ("P#0", "P#3", "P#9", "P#nope"):
        q.append(dict(KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": pk}}))
        q.append(dict(KeyConditionExpression="PK = :p AND begins_with(SK, :s)", ExpressionAttributeValues={":p": {"S": pk}, ":s": {"S": "D#1"}}))
        q.append(dict(KeyConditionExpression="PK = :p AND SK BETWEEN :a AND :b", ExpressionAttributeValues={":p": {"S": pk}, ":a": {"S": "D#2"}, ":b": {"S": "D#5"}}, ScanIndexForward=False))
        q.append(dict(KeyConditionExpression="PK = :p AND SK > :a", ExpressionAttributeValues={":p": {"S": pk}, ":a": {"S": "M#"}}, Limit=7))
        q.append(dict(KeyConditionExpression="PK = :p", FilterExpression="n > :n", ExpressionAttributeValues={":p": {"S": pk}, ":n": {"N": "50"}}, ProjectionExpression="SK, n"))
    for g in ("G#0", "G#4", "G#nope"):
        q.append(dict(IndexName="byG", KeyConditionExpression="G = :g", ExpressionAttributeValues={":g": {"S": g}}))
        q.append(dict(IndexName="byG", KeyConditionExpression="G = :g AND GS >= :s", ExpressionAttributeValues={":g": {"S": g}, ":s": {"N": "40"}}, ScanIndexForward=False, Limit=5))
        q.append(dict(IndexName="byH", KeyConditionExpression="H = :g", ExpressionAttributeValues={":g": {"S": g.replace("G", "H")}}))
    return q

def pages(client, query):
    out, start = [], None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = client.query(TableName="t", **query, **extra)
        out.append({"Items": page["Items"], "Count": page["Count"], "ScannedCount": page["ScannedCount"], "Last": page.get("LastEvaluatedKey")})
        start = page.get("LastEvaluatedKey")
        if not start:
            return out

def rich(rnd, i):
    return {
        "s": {"S": "é" * rnd.randrange(3) + str(i)}, "n": {"N": str(rnd.randrange(100))}, "f": {"N": "3.25"},
        "b": {"B": bytes([i % 256, 0, 255]) * rnd.randrange(1, 4)}, "ss": {"SS": ["a", f"x{i}"]}, "ns": {"NS": ["1", "2.5", str(i)]},
        "bs": {"BS": [b"\x00\x01", bytes([i % 256])]}, "null": {"NULL": True}, "t": {"BOOL": i % 2 == 0},
        "m": {"M": {"k": {"S": "v"}, "deep": {"M": {"l": {"L": [{"N": "1"}, {"B": b"\xff"}, {"M": {}}, {"L": []}]}}}, "e": {"S": ""}}},
        "l": {"L": [{"S": "one"}, {"NS": ["7"]}, {"NULL": True}, {"BOOL": False}, {"SS": ["q"]}]},
    }

def others(c):
    key = {"PK": {"S": "P#0"}, "SK": c.query(TableName="t", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "P#0"}})["Items"][0]["SK"]}
    out = [c.get_item(TableName="t", Key=key)["Item"]]
    out.append(c.get_item(TableName="t", Key=key, ProjectionExpression="m.deep, l[1], b")["Item"])
    out.append(c.get_item(TableName="t", Key={"PK": {"S": "P#0"}, "SK": {"S": "nope"}}).get("Item"))
    keys = [{"PK": it["PK"], "SK": it["SK"]} for it in c.query(TableName="t", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "P#5"}})["Items"][:20]]
    got = c.batch_get_item(RequestItems={"t": {"Keys": keys}})["Responses"]["t"]
    out.append(sorted(got, key=lambda it: it["SK"]["S"]))
    out.append(c.transact_get_items(TransactItems=[{"Get": {"TableName": "t", "Key": k}} for k in keys[:5]])["Responses"])
    out.append(c.scan(TableName="t", FilterExpression="n < :n", ExpressionAttributeValues={":n": {"N": "10"}})["Items"])
    out.append(c.update_item(TableName="t", Key=key, UpdateExpression="SET n = n + :one, l = list_append(l, :more) ADD ss :x", ExpressionAttributeValues={":one": {"N": "1"}, ":more": {"L": [{"B": b"z"}]}, ":x": {"SS": ["new"]}}, ReturnValues="ALL_NEW")["Attributes"])
    return out

def attempt(call, **kw):
    """"ok", or what DynamoDB refused with: code, message, cancellation reasons."""
    from botocore.exceptions import ClientError

    try:
        call(**kw)
        return "ok"
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["Error"].get("Message", ""), [r.get("Code") for r in e.response.get("CancellationReasons", [])]]

def conditional(c):
    """Conditional writes, claims and transactions: what each answers, then what the table holds."""
    claim = "attribute_not_exists (#0) OR (#1 = :0 AND #2 = :1)"
    names = {"#0": "PK", "#1": "status", "#2": "batch"}
    out = []
    for batch in ("b1", "b1", "b2", "b1"):
        for n in range(4):
            item = {"PK": {"S": "MSG#1"}, "SK": {"S": f"TO#{n}"}, "status": {"S": "sending"}, "batch": {"S": batch}}
            out.append(attempt(c.put_item, TableName="c", Item=item, ConditionExpression=claim, ExpressionAttributeNames=names, ExpressionAttributeValues={":0": {"S": "sending"}, ":1": {"S": batch}}))
    tx = [{"Put": {"TableName": "c", "Item": {"PK": {"S": "MSG#2"}, "SK": {"S": f"TO#{n}"}, "status": {"S": "sending"}, "batch": {"S": "b9"}}, "ConditionExpression": claim, "ExpressionAttributeNames": names, "ExpressionAttributeValues": {":0": {"S": "sending"}, ":1": {"S": "b9"}}}} for n in range(5)]
    out.append(attempt(c.transact_write_items, TransactItems=tx))
    out.append(attempt(c.transact_write_items, TransactItems=tx))  # a retry of the same batch may take them again
    other = [dict(t, Put=dict(t["Put"], ExpressionAttributeValues={":0": {"S": "sending"}, ":1": {"S": "b8"}}, Item=dict(t["Put"]["Item"], batch={"S": "b8"}))) for t in tx]
    other[0]["Put"]["Item"] = dict(other[0]["Put"]["Item"], SK={"S": "TO#new"})
    out.append(attempt(c.transact_write_items, TransactItems=other))  # cancelled: all or nothing
    for status in ("sending", "sent", "sending"):
        out.append(attempt(c.update_item, TableName="c", Key={"PK": {"S": "MSG#1"}, "SK": {"S": "TO#0"}}, UpdateExpression="SET #s = :new", ConditionExpression="#s = :old", ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":new": {"S": "sent"}, ":old": {"S": status}}))
    out.append(attempt(c.delete_item, TableName="c", Key={"PK": {"S": "MSG#1"}, "SK": {"S": "TO#1"}}, ConditionExpression="#b IN (:a, :b)", ExpressionAttributeNames={"#b": "batch"}, ExpressionAttributeValues={":a": {"S": "zz"}, ":b": {"S": "b1"}}))
    out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "X"}, "SK": {"S": "Y"}}, ConditionExpression="attribute_not_exists(PK)", ExpressionAttributeValues={":unused": {"S": "u"}}))
    out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "X"}, "SK": {"S": "Y"}}, ConditionExpression="attribute_not_exists(PK) AND", ExpressionAttributeValues={}))
    out.append(sorted(c.scan(TableName="c")["Items"], key=lambda it: (it["PK"]["S"], it["SK"]["S"])))
    return out

def sizes(c):
    """The item and page size limits, before and after items change size in place."""
    def page_sizes():
        out, start = [], None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = c.query(TableName="c", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "BIG"}}, **extra)
            out.append([it["SK"]["S"] for it in page["Items"]])
            start = page.get("LastEvaluatedKey")
            if not start:
                return out

    out = []
    for i in range(30):  # 30 items of ~60 KB: a Query pages at 1 MB
        out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "BIG"}, "SK": {"S": f"{i:02d}"}, "v": {"S": "x" * 60000}, "w": {"L": [{"S": "y" * 1000}] * 3}}))
    out.append(page_sizes())
    for i in range(0, 30, 3):  # grow some in place (SET), shrink others (REMOVE, AttributeUpdates)
        out.append(attempt(c.update_item, TableName="c", Key={"PK": {"S": "BIG"}, "SK": {"S": f"{i:02d}"}}, UpdateExpression="SET v2 = :v", ExpressionAttributeValues={":v": {"S": "z" * 150000}}))
        out.append(attempt(c.update_item, TableName="c", Key={"PK": {"S": "BIG"}, "SK": {"S": f"{i + 1:02d}"}}, UpdateExpression="REMOVE v"))
        out.append(attempt(c.update_item, TableName="c", Key={"PK": {"S": "BIG"}, "SK": {"S": f"{i + 2:02d}"}}, AttributeUpdates={"v": {"Action": "DELETE"}}))
    out.append(page_sizes())
    out.append(attempt(c.update_item, TableName="c", Key={"PK": {"S": "BIG"}, "SK": {"S": "00"}}, UpdateExpression="SET v3 = :v", ExpressionAttributeValues={":v": {"S": "z" * 250000}}))  # over 400 KB
    out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "BIG"}, "SK": {"S": "huge"}, "a": {"S": "q" * 300000}, "b": {"S": "q" * 110000}}))
    out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "BIG"}, "SK": {"S": "edge"}, "a": {"S": "q" * 404990}}))  # 2 bytes over
    out.append(attempt(c.put_item, TableName="c", Item={"PK": {"S": "BIG"}, "SK": {"S": "edge"}, "a": {"S": "q" * 404985}}))  # 3 bytes under
    tx = [{"Update": {"TableName": "c", "Key": {"PK": {"S": "BIG"}, "SK": {"S": "05"}}, "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"S": "r" * 200000}}}}]
    out.append(attempt(c.transact_write_items, TransactItems=tx))
    out.append(page_sizes())
    return out

def run(patch):
    with mock_aws():
        if patch:
            from infra.twin.motopatches import fast_attribute_values, partition_queries
            from infra.twin.motopatches import cached_item_sizes, remember_conditions
            partition_queries()
            fast_attribute_values()
            remember_conditions()
            cached_item_sizes()
        c = boto3.client("dynamodb", region_name="us-east-1")
        c.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in (("PK", "S"), ("SK", "S"), ("G", "S"), ("GS", "N"), ("H", "S"))],
            GlobalSecondaryIndexes=[
                {"IndexName": "byG", "KeySchema": [{"AttributeName": "G", "KeyType": "HASH"}, {"AttributeName": "GS", "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}},
                {"IndexName": "byH", "KeySchema": [{"AttributeName": "H", "KeyType": "HASH"}], "Projection": {"ProjectionType": "KEYS_ONLY"}},
            ],
        )
        rnd = random.Random(7)
        for i in range(600):
            item = {"PK": {"S": f"P#{rnd.randrange(10)}"}, "SK": {"S": f"{rnd.choice('DMR')}#{rnd.randrange(10)}#{i:04d}"}, "n": {"N": str(rnd.randrange(100))}}
            if rnd.random() < 0.7:
                item["G"] = {"S": f"G#{rnd.randrange(6)}"}
                if rnd.random() < 0.8:
                    item["GS"] = {"N": str(rnd.randrange(100))}
            if rnd.random() < 0.5:
                item["H"] = {"S": f"H#{rnd.randrange(6)}"}
            if rnd.random() < 0.5:
                item.update(rich(rnd, i))
            c.put_item(TableName="t", Item=item)
        c.delete_item(TableName="t", Key={"PK": {"S": "P#3"}, "SK": c.query(TableName="t", KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "P#3"}})["Items"][0]["SK"]})
        c.create_table(
            TableName="c", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
        )
        return [pages(c, q) for q in queries()] + [others(c), conditional(c), sizes(c)]

def plain(value):
    """Binary values as text, so the answers compare as JSON."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return value

print(json.dumps(plain({"before": run(False), "after": run(True)})))
'''


def test_partition_queries_answer_exactly_what_moto_answers() -> None:
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = result["before"], result["after"]
    assert len(before) == len(after) == 32
    assert sum(len(page["Items"]) for query in before[:29] for page in query) > 300  # the queries find things
    assert any(len(query) > 1 for query in before[:29])  # and some of them page
    assert "bs" in before[29][0] and before[29][3]  # the other reads found rich items
    outcomes = before[30][:-1]
    assert "ok" in outcomes and sorted({o[0] for o in outcomes[:16] if o != "ok"}) == [
        "ConditionalCheckFailedException"
    ]
    assert any(o != "ok" and o[0] == "TransactionCanceledException" for o in outcomes)  # the conditions can refuse
    assert any(o != "ok" and o[0] == "ValidationException" for o in outcomes)
    first_pages, grown_pages = before[31][30], before[31][61]
    assert len(first_pages) > 1 and grown_pages != first_pages  # the page limit bites, and follows the updates
    limits = before[31][62:67]  # over 400 KB by update, by put, by 2 bytes; 3 bytes under; a transaction
    assert [o == "ok" for o in limits] == [False, False, False, True, True], limits
    assert all("size" in o[1].lower() for o in limits[:3])
    for n, (expected, got) in enumerate(zip(before, after, strict=True)):
        assert got == expected, f"request group {n} answered differently with the twin's changes"


KEEP_ALIVE = r"""
import sys, boto3, urllib3.connection as uc
opened = [0]
real = uc.HTTPConnection._new_conn
def counted(self):
    opened[0] += 1
    return real(self)
uc.HTTPConnection._new_conn = counted
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
d, s3, sqs = boto3.client("dynamodb", **kw), boto3.client("s3", **kw), boto3.client("sqs", **kw)
d.create_table(TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
s3.create_bucket(Bucket="keep-alive")
queue = sqs.create_queue(QueueName="keep-alive")["QueueUrl"]
for i in range(30):
    d.put_item(TableName="t", Item={"pk": {"S": str(i)}, "v": {"S": "x" * i}})
    assert d.get_item(TableName="t", Key={"pk": {"S": str(i)}})["Item"]["v"]["S"] == "x" * i
    body = bytes([i]) * (i * 4099)
    s3.put_object(Bucket="keep-alive", Key=f"k{i}", Body=body)
    assert s3.get_object(Bucket="keep-alive", Key=f"k{i}")["Body"].read() == body
    assert s3.head_object(Bucket="keep-alive", Key=f"k{i}")["ContentLength"] == len(body)
    try:
        s3.get_object(Bucket="keep-alive", Key="missing")
        raise AssertionError("a missing key was found")
    except s3.exceptions.NoSuchKey:
        pass
    s3.delete_object(Bucket="keep-alive", Key=f"k{i}")  # 204, no body
    sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
big = b"z" * (3 * 1024 * 1024)
s3.put_object(Bucket="keep-alive", Key="big", Body=big)
assert s3.get_object(Bucket="keep-alive", Key="big")["Body"].read() == big
got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
assert len(got) == 10
print(opened[0])
"""


def test_the_twins_moto_keeps_connections_alive_and_answers_every_kind_of_request(tmp_path: Path) -> None:
    """One client, 214 requests (bodies of every size, HEAD, 204, 404 with a body):
    every answer right, and no new connection after the first one per client."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "infra.twin.motoserver", "127.0.0.1", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "moto.log").open("wb"),
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(
            [sys.executable, "-c", KEEP_ALIVE, f"http://127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert int(out.stdout.strip().splitlines()[-1]) <= 3  # one per client (dynamodb, s3, sqs), not one per request
    finally:
        server.terminate()
        server.wait(10)


HEADER_BLOCKS = [
    b"Host: a\r\nContent-Length: 5\r\nX-Amz-Target: DynamoDB_20120810.Query\r\n\r\n",
    b"Host:a\r\n\r\n",
    b"Host:   \t spaced  \r\n\r\n",
    b"A: 1\r\nA: 2\r\na: 3\r\n\r\n",
    b"Folded: a\r\n  b\r\nNext: c\r\n\r\n",
    b"NoColon\r\nB: 1\r\n\r\n",
    b" Lead: x\r\n\r\n",
    b"Bad Name: x\r\n\r\n",
    b"E: a\rb\r\n\r\n",
    b"Lf: only\nAnd: this\n\n",
    b":empty\r\n\r\n",
    b"\xe9t\xe9: v\xe9\r\n\r\n",
    b"K: v\xe9\r\n\r\n",
    b"From someone\r\nX: y\r\n\r\n",
    b"\r\n",
    b"A: 1\r\n",  # the stream ended before the blank line
    b"",
]


def test_request_headers_read_as_the_email_parser_reads_them(monkeypatch: Any) -> None:
    """``fast_header_parsing``: every header block, well-formed or not, gives the same
    headers, payload and defects as ``http.client``'s email parser."""
    import email.parser
    import http.client
    import io

    from infra.twin.motoserver import fast_header_parsing

    slow = http.client.parse_headers
    monkeypatch.setattr(http.client, "parse_headers", slow)  # restored after the test
    fast_header_parsing()
    fast = http.client.parse_headers
    assert fast is not slow
    parsed: list[str] = []
    parsestr = email.parser.Parser.parsestr

    def counted(self: Any, text: str, headersonly: bool = False) -> Any:
        parsed.append(text)
        return parsestr(self, text, headersonly)

    monkeypatch.setattr(email.parser.Parser, "parsestr", counted)
    for block in HEADER_BLOCKS:
        expected = slow(io.BytesIO(block))
        parsed.clear()
        got = fast(io.BytesIO(block))
        plain = block in ([*HEADER_BLOCKS[:4], HEADER_BLOCKS[9], HEADER_BLOCKS[12], *HEADER_BLOCKS[-3:]])
        assert bool(parsed) is not plain, (block, parsed)  # the parser reads only what is not plain "Name: value"
        assert got.items() == expected.items(), block
        assert got.get_payload() == expected.get_payload(), block
        assert [type(d) for d in got.defects] == [type(d) for d in expected.defects], block
    assert fast(io.BytesIO(HEADER_BLOCKS[0]))["x-amz-target"] == "DynamoDB_20120810.Query"


def test_random_ids_keep_their_alphabets_and_lengths(monkeypatch: Any) -> None:
    """``cheap_random_ids`` draws request and SES message ids faster, in the same shapes."""
    import re

    import moto.ses.utils as ses_utils
    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.moto_random import MotoRandom
    from moto.utilities.aws_headers import gen_amzn_requestid_long

    from infra.twin.motopatches import cheap_random_ids

    shapes = {
        "request": (gen_amzn_requestid_long, r"[A-Za-z0-9]{52}"),
        "ses": (ses_utils.get_random_message_id, r"[a-z]{16}-[a-z]{8}-[a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{12}-[a-z]{6}"),
        "hex": (lambda: mock_random.get_random_hex(12), r"[0-9a-f]{12}"),
        "lower": (lambda: mock_random.get_random_string(9, include_digits=False, lower_case=True), r"[a-z]{9}"),
    }
    before = {name: {make() for _ in range(200)} for name, (make, _) in shapes.items()}
    for name in ("get_random_hex", "get_random_string"):
        monkeypatch.setattr(MotoRandom, name, getattr(MotoRandom, name))
    monkeypatch.setattr(ses_utils, "random_hex", ses_utils.random_hex)
    cheap_random_ids()
    after = {name: {make() for _ in range(200)} for name, (make, _) in shapes.items()}
    for name, (_, shape) in shapes.items():
        for ids in (before[name], after[name]):
            assert len(ids) == 200, name  # no repeats
            assert all(re.fullmatch(shape, i) for i in ids), (name, sorted(ids)[:3])
        # every character of the alphabet still turns up
        assert set("".join(after[name])) - {"-"} == set("".join(before[name])) - {"-"}, name


DISPATCH = r"""
import json, re, sys
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse
from moto.moto_api._internal import mock_random
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from infra.twin import motopatches

motopatches.stop_tracking_instances()
motopatches.remember_backends()
if sys.argv[1] == "direct":
    motopatches.direct_dispatch()
mock_random.seed(14)
import flask
through_flask = []
wsgi_app = flask.Flask.wsgi_app
flask.Flask.wsgi_app = lambda self, environ, start: through_flask.append(1) or wsgi_app(self, environ, start)
app = Client(DomainDispatcherApplication(create_backend_app))
VOLATILE = {"date", "last-modified", "x-amz-id-2", "x-amz-crc32"}  # the CRC covers timestamps
# A timestamp's digits vary in length, and the body's length with them: each answer's
# Content-Length is checked against its own body instead.
TIMES = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?|\b1[7-9]\d{8}(\.\d+)?\b|\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT")
answers = []

def forward(request, **kwargs):
    url = urlsplit(request.url)
    body = request.body.read() if hasattr(request.body, "read") else request.body
    got = app.open(url.path, query_string=url.query, method=request.method, headers={k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}, data=body, base_url=f"{url.scheme}://{url.netloc}")
    content = got.get_data()
    length = got.headers.get("Content-Length")
    length_right = length is None or request.method == "HEAD" or int(length) == len(content)
    headers = sorted((k.lower(), "n" if k.lower() == "content-length" else v) for k, v in got.headers.items() if k.lower() not in VOLATILE)
    answers.append([request.method, url.path, got.status_code, length_right, [(k, TIMES.sub(b"T", v.encode()).decode()) for k, v in headers], TIMES.sub(b"T", content).decode("latin-1")])
    return AWSResponse(request.url, got.status_code, dict(got.headers.items()), MockRawResponse(content))

def client(service):
    c = boto3.client(service, endpoint_url="http://localhost:5000", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    c.meta.events.register("before-send", forward)
    return c

def attempt(call, **kw):
    try:
        return call(**kw)
    except Exception as exc:
        return type(exc).__name__

d, sqs, s3, ses, sesv1, events, sns = (client(s) for s in ("dynamodb", "sqs", "s3", "sesv2", "ses", "events", "sns"))
d.create_table(TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
d.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}})
attempt(d.put_item, TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
d.get_item(TableName="t", Key={"pk": {"S": "a"}})
attempt(d.get_item, TableName="missing", Key={"pk": {"S": "a"}})
d.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})
q = sqs.create_queue(QueueName="q")["QueueUrl"]
sqs.send_message(QueueUrl=q, MessageBody="hello")
for m in sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10).get("Messages", []):
    sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
attempt(sqs.get_queue_url, QueueName="nope")
s3.create_bucket(Bucket="bkt-dispatch")
s3.put_object(Bucket="bkt-dispatch", Key="k/é x", Body=b"body" * 100, Metadata={"under_score": "1"})
s3.get_object(Bucket="bkt-dispatch", Key="k/é x")["Body"].read()
s3.head_object(Bucket="bkt-dispatch", Key="k/é x")
attempt(s3.get_object, Bucket="bkt-dispatch", Key="missing")
s3.list_objects_v2(Bucket="bkt-dispatch")
s3.delete_object(Bucket="bkt-dispatch", Key="k/é x")
sesv1.verify_domain_identity(Domain="relay.example")
ses.send_email(FromEmailAddress="x@relay.example", Destination={"ToAddresses": ["r@people.example"]}, Content={"Raw": {"Data": b"From: x@relay.example\r\nTo: r@people.example\r\nSubject: hi\r\n\r\nbody"}})
attempt(ses.send_email, FromEmailAddress="x@unverified.example", Destination={"ToAddresses": ["r@people.example"]}, Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}})
attempt(ses.get_email_identity, EmailIdentity="nope.example")
events.put_events(Entries=[{"Source": "muster", "DetailType": "t", "Detail": "{}"}])
topic = sns.create_topic(Name="n")["TopicArn"]
sns.publish(TopicArn=topic, Message="m")
print(json.dumps({"answers": answers, "through_flask": len(through_flask)}))
"""


def test_direct_dispatch_answers_as_moto_through_flask() -> None:
    """``direct_dispatch``: DynamoDB, SQS, S3 (keys with spaces and accents,
    metadata with underscores, HEAD, 404, 204), SES v1 and v2 (a refusal included),
    EventBridge and SNS answer with the same status, headers and body as through
    Flask (moto's ids seeded alike; times masked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    runs = {}
    for mode in ("flask", "direct"):
        out = subprocess.run(
            [sys.executable, "-c", DISPATCH, mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, out.stderr[-3000:]
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["direct"]["through_flask"] == 0  # every request took the direct path
    assert runs["flask"]["through_flask"] == len(runs["flask"]["answers"])
    flask, direct = runs["flask"]["answers"], runs["direct"]["answers"]
    assert len(flask) >= 25
    statuses = {status for _, _, status, _, _, _ in flask}
    assert {200, 204, 400, 404} <= statuses  # refusals and bodiless answers are in the comparison
    assert all(length_right for _, _, _, length_right, _, _ in flask + direct)  # Content-Length is the body's
    for expected, got in zip(flask, direct, strict=True):
        assert got == expected
