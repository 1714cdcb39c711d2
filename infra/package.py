"""Package one stage as a complete CloudFormation (SAM) stack, offline.

    python infra/package.py --stage prod [--out out] [--no-lint]

1. ``chalice package --merge-template infra/template.json`` writes ``sam.json`` and
   ``deployment.zip``: Chalice's functions and triggers, deep-merged with the
   resources Chalice does not create (tables, bucket, SES, SQS, Scheduler, alarms)
   and each function's least-privilege policy.
2. The ``Stage`` parameter is pinned to the packaged stage (its default and only
   allowed value), because the Chalice half of the template already carries that
   stage's ``.chalice/config.json`` values. A prod package cannot be deployed as dev.
3. ``cfn-lint`` checks the result (SAM transform included); any error or warning fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "sam.json"


def bin_path(name: str) -> str:
    """The tool next to this interpreter (the venv), else whatever is on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def chalice_package(stage: str, out: Path, project: Path = ROOT, merge_template: Path | None = None) -> Path:
    merge = merge_template or project / "infra" / "template.json"
    # The app reads MUSTER_* at import time (queue and topic names in decorators);
    # package from a clean slate so the output depends on the stage alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSTER_")}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    subprocess.run(  # noqa: S603 -- fixed argv: our venv's chalice, our paths
        [
            bin_path("chalice"),
            "--project-dir",
            str(project),
            "package",
            "--stage",
            stage,
            "--pkg-format",
            "cloudformation",
            "--merge-template",
            str(merge),
            str(out),
        ],
        check=True,
        env=env,
        cwd=project,
    )
    return out / TEMPLATE


def pin_stage(template_path: Path, stage: str) -> dict:  # type: ignore[type-arg]
    template = json.loads(template_path.read_text())
    parameter = template["Parameters"]["Stage"]
    parameter["Default"] = stage
    parameter["AllowedValues"] = [stage]
    parameter.pop("AllowedPattern", None)
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    return template  # type: ignore[no-any-return]


def lint(template_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [bin_path("cfn-lint"), str(template_path)], capture_output=True, text=True, check=False
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default=os.environ.get("STAGE", "dev"))
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--no-lint", action="store_true")
    args = parser.parse_args(argv)

    path = chalice_package(args.stage, args.out)
    pin_stage(path, args.stage)
    sys.stdout.write(f"packaged stage {args.stage}: {path} and {args.out / 'deployment.zip'}\n")
    if args.no_lint:
        return 0
    result = lint(path)
    sys.stdout.write(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.stdout.write(f"cfn-lint found problems in {path}\n")
        return 1
    sys.stdout.write("cfn-lint: no errors or warnings\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
