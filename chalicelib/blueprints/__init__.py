"""Entry points, one blueprint per kind of trigger. Each parses its input, calls
one domain function and maps the outcome; no business rules live here."""
