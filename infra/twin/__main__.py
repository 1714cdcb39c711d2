"""``python -m infra.twin`` (``make dev``): run the local twin in the foreground."""

from infra.twin.main import main

raise SystemExit(main())
