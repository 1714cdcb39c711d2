# Muster: every workflow starts from a fresh clone with `make dev` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAGE ?= dev
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev demo advance test system-deps lint typecheck contracts package checkov checkov-venv deploy api-key kpis bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# checkov pins boto3 and packaging below ours, so it gets its own venv (pins: infra/checkov-requirements.txt).
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: infra/checkov-requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/checkov-requirements.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

## Run all of Muster locally (the local twin): AWS emulation, API, SMTP in, outbox out.
dev: venv
	$(PY) -m infra.twin

## Send a demo scenario through the running twin: make demo
demo: venv
	$(PY) -m infra.twin.demo

## Move the twin's clock forward: make advance HOURS=48
advance: venv
	$(PY) -m infra.twin.clock advance $(HOURS)

## Debian packages the e2e tests need: chromium (mailbox test), notmuch (threading test). CI must have both.
system-deps:
	bash infra/twin/system-deps.sh

## Lint, type-check and run every test (unit, integration, property, e2e).
test: venv checkov-venv system-deps lint typecheck
	$(PY) -m pytest -q -n 2

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy

## Regenerate chalicelib/openapi.json and events_schema/ from the models.
contracts: venv
	$(PY) -m chalicelib.contracts

## Create an API key for an integration: make api-key INTEGRATION=mobilize [STAGE=prod]
api-key: venv
	$(PY) -m chalicelib.cli create-key $(INTEGRATION) --stage $(STAGE)

## Package a stage as CloudFormation (out/sam.json + out/deployment.zip) and cfn-lint it: make package [STAGE=prod]
package: venv
	$(PY) infra/package.py --stage $(STAGE) --out out

## Scan the packaged stack with checkov (skips, each with its reason: infra/checkov.yaml): make checkov [STAGE=prod]
checkov: package checkov-venv
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --config-file infra/checkov.yaml -f out/sam.json

## Deploy a stage to your AWS account (see README, Deploy to AWS):
##   make deploy STAGE=prod RELAY_DOMAIN=chat.example.org DEPLOY_BUCKET=<artifact bucket> [HOSTED_ZONE_ID=Z...] [ALARM_EMAIL=ops@example.org] [PUBLIC_URL=https://...]
AWS ?= aws
STACK_NAME ?= muster-$(STAGE)
deploy: package
	@command -v $(AWS) >/dev/null || { echo "The AWS CLI is missing: install AWS CLI v2, or run $(PY) -m pip install awscli"; exit 1; }
	@test -n "$(RELAY_DOMAIN)" || { echo "RELAY_DOMAIN=<domain SES receives mail for> is required"; exit 1; }
	@test -n "$(DEPLOY_BUCKET)" || { echo "DEPLOY_BUCKET=<S3 bucket for the code zip and template, same region> is required"; exit 1; }
	$(AWS) cloudformation package --template-file out/sam.json --use-json \
		--s3-bucket $(DEPLOY_BUCKET) --s3-prefix muster/$(STAGE) --output-template-file out/packaged.json
	$(AWS) cloudformation deploy --template-file out/packaged.json --stack-name $(STACK_NAME) \
		--s3-bucket $(DEPLOY_BUCKET) --s3-prefix muster/$(STAGE) \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
		--parameter-overrides Stage=$(STAGE) RelayDomain=$(RELAY_DOMAIN) \
		$(if $(HOSTED_ZONE_ID),HostedZoneId=$(HOSTED_ZONE_ID)) $(if $(ALARM_EMAIL),AlarmEmail=$(ALARM_EMAIL)) \
		$(if $(PUBLIC_URL),PublicUrl=$(PUBLIC_URL))
	$(AWS) cloudformation describe-stacks --stack-name $(STACK_NAME) \
		--query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
	@echo "Next: add the MX and DKIM records (unless HOSTED_ZONE_ID was given), then activate the rule set:"
	@echo "  $(AWS) ses set-active-receipt-rule-set --rule-set-name muster-$(STAGE)-inbound   (only ONE set is active per region)"

## R14's product KPIs of one integration, as GET /kpis gives them (uses your AWS credentials):
##   make kpis INTEGRATION=mobilize [FROM=2026-11-01] [TO=2026-11-30] [EVENT_ID=e1] [STAGE=prod]
kpis: venv
	$(PY) -m chalicelib.cli kpis $(INTEGRATION) --stage $(STAGE) $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO)) $(if $(EVENT_ID),--event-id $(EVENT_ID))

bench: venv
	$(PY) bench/cold_start.py
	$(PY) bench/relay.py
	$(PY) bench/sanitize.py
	$(PY) bench/controls.py
	$(PY) bench/twin.py
	$(PY) bench/mime_fuzz.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) out .local .pytest_cache .mypy_cache .ruff_cache
