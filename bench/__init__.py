"""Benchmarks of the gateway against Keycloak on the same machine (issue 7).

Run ``python -m bench`` from the repository root (``python -m bench --help`` for the options).
These are not tests: they print figures and never fail on a number.
"""
