"""The operations dashboard (infra/template.json, issue 11) draws metrics the code
really emits: a renamed metric would leave an empty graph, so it fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chalicelib.relay.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[2]


def emitted() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        names |= set(re.findall(r'add_metric\(name="([A-Za-z_]+)"', path.read_text()))
    # services/relay.py: name = "Relayed" if ... else "Held" if ... else f"Rejected_{outcome.value}"
    names |= {"Relayed", "Held", "BotAnswered"} | {f"Rejected_{o.value}" for o in Outcome}
    return names


def dashboard() -> dict:
    template = json.loads((ROOT / "infra" / "template.json").read_text())
    body = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(body.replace("${AWS::Region}", "us-east-1").replace("${Stage}", "dev"))


def test_every_muster_metric_on_the_dashboard_is_emitted_by_the_code() -> None:
    drawn = {
        row[1]
        for widget in dashboard()["widgets"]
        if widget["type"] == "metric"
        for row in widget["properties"]["metrics"]
        if isinstance(row[0], str) and row[0] == "Muster"
    }
    assert drawn - emitted() == set()
    must = {"Relayed", "CopiesSent", "RelayLatency", "FanOutSize", "HardBounces", "SoftBounces", "Complaints"}
    assert must <= drawn
    # Every refusal reason is drawn; a bot's answer (BotAnswered) is not a refusal.
    refusals = {o for o in Outcome if o not in (Outcome.RELAYED, Outcome.HELD, Outcome.BOT_ANSWERED)}
    assert {f"Rejected_{o.value}" for o in refusals} <= drawn


def test_the_rates_are_metric_math_over_copies_sent() -> None:
    widget = next(w for w in dashboard()["widgets"] if w["properties"].get("title", "").startswith("Bounce"))
    expressions = [row[0]["expression"] for row in widget["properties"]["metrics"] if isinstance(row[0], dict)]
    assert expressions == ["100*(FILL(hard,0)+FILL(soft,0))/sent", "100*FILL(compl,0)/sent"]
