"""What the gateway and the operator share: the admin API v1's vocabulary and its client.

Neither side imports the other's internals (DESIGN.md); both import this package, which imports
neither of them.
"""
