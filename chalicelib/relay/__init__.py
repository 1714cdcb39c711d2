"""Pure relay core: parse, authorize, anonymize and render mail.

Nothing in this package talks to AWS; it takes bytes and plain data and returns
bytes and plain data, so it stays fast, fuzzable and property-testable.
"""
