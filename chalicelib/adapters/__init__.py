"""Adapters: the only code that talks to AWS. Clients are created lazily, once
per container, and every adapter takes an optional client for tests."""
