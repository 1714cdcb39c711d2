"""Shared test setup: safe AWS credentials before anything imports boto3."""

from tests.offline import use_offline_aws

use_offline_aws()
