"""checkov over the packaged stack (issue 14).

The dev stage is packaged as ``make package`` does, then checkov (in its own venv,
``.venv-checkov``, because it pins boto3 and packaging below ours) runs every
CloudFormation check on it. A failed check must be listed in ``infra/checkov.yaml``
with its one-line reason; a listed skip that no longer fails anywhere must go.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import package

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "infra" / "checkov.yaml"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# Checks that must pass, never be skipped: IAM least privilege, nothing public,
# key rotation and the encrypted topics (the feedback topic carries addresses).
NEVER_SKIPPED = {
    "CKV_AWS_7": "KMS key rotation",
    "CKV_AWS_26": "SNS topic encryption",
    "CKV_AWS_33": "KMS key policy without a wildcard principal",
    "CKV_AWS_53": "S3 block public ACLs",
    "CKV_AWS_54": "S3 block public policy",
    "CKV_AWS_55": "S3 ignore public ACLs",
    "CKV_AWS_56": "S3 restrict public buckets",
    "CKV_AWS_60": "IAM role assumable only by named principals",
    "CKV_AWS_61": "IAM role not assumable by every service",
    "CKV_AWS_63": "IAM wildcard action",
    "CKV_AWS_107": "IAM credentials exposure",
    "CKV_AWS_108": "IAM data exfiltration",
    "CKV_AWS_109": "IAM permissions management without constraints",
    "CKV_AWS_110": "IAM privilege escalation",
    "CKV_AWS_111": "IAM write access without constraints",
}


def skip_list() -> dict[str, str]:
    """``{check id: reason}`` from the config file; the reason is the line's comment."""
    listed = yaml.safe_load(CONFIG.read_text())["skip-check"]
    reasons = dict(re.findall(r"^\s*-\s*(CKV_[A-Z0-9_]+)\s*#\s*(.*?)\s*$", CONFIG.read_text(), re.MULTILINE))
    return {check: reasons.get(check, "") for check in listed}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not CHECKOV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHECKOV} is missing: `make test` builds it (make checkov-venv)")
        pytest.skip("checkov is not installed here: make checkov-venv")
    path = package.chalice_package("dev", tmp_path_factory.mktemp("checkov"))
    package.pin_stage(path, "dev")
    # Every check runs (no config file): the skip list is applied below, so a stale skip shows.
    result = subprocess.run(
        [str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
        timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    (report,) = report if isinstance(report, list) else [report]
    assert report["check_type"] == "cloudformation"
    return report  # type: ignore[no-any-return]


def test_the_whole_stack_was_scanned(scan: dict[str, Any]) -> None:
    summary = scan["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 60  # nine functions and everything around them
    assert summary["passed"] >= 100


def test_every_failed_check_is_a_justified_skip(scan: dict[str, Any]) -> None:
    skips = skip_list()
    failed = scan["results"]["failed_checks"]
    unexpected = sorted(
        f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in failed if f["check_id"] not in skips
    )
    assert not unexpected, "fix these, or skip them with a reason in infra/checkov.yaml:\n" + "\n".join(unexpected)
    stale = sorted(set(skips) - {f["check_id"] for f in failed})
    assert not stale, f"these skips no longer fail anywhere; remove them from infra/checkov.yaml: {stale}"


def test_iam_public_access_and_encryption_checks_pass_and_are_never_skipped(scan: dict[str, Any]) -> None:
    assert not set(NEVER_SKIPPED) & set(skip_list())
    passed = {p["check_id"] for p in scan["results"]["passed_checks"]}
    failed = {f["check_id"] for f in scan["results"]["failed_checks"]}
    # Each applies to some resource of ours (roles, the bucket, the key, the topics), and passes there.
    assert set(NEVER_SKIPPED) <= passed, sorted(set(NEVER_SKIPPED) - passed)
    assert not set(NEVER_SKIPPED) & failed


def test_each_skip_has_a_one_line_reason() -> None:
    skips = skip_list()
    assert skips
    for check, reason in skips.items():
        assert len(reason) >= 40, f"{check}: say why it is skipped, on its line in infra/checkov.yaml"
    # checkov reads the same file (make checkov): its own keys only.
    assert set(yaml.safe_load(CONFIG.read_text())) == {"framework", "skip-download", "compact", "quiet", "skip-check"}
