"""OpenID Federation 1.0: the gateway as the national trust anchor (issue 17).

* :mod:`.policy`: metadata policies (§6.1), checked when loaded, merged and applied;
* :mod:`.statements`: entity statements signed and verified (§3), protocol-free;
* :mod:`.anchor`: :class:`~.anchor.TrustAnchor`, the entity configuration (§9), subordinate
  statements (§8.1), the list (§8.2) and resolve (§8.3) endpoints' answers;
* :mod:`.trust_marks`: trust marks issued on the platform's say-so (§7), the status (§8.4),
  listing (§8.5) and trust mark (§8.6) endpoints' answers;
* :mod:`.views`: the Flask edges (``/.well-known/openid-federation``, ``/federation/*`` and
  ``/admin/v1/federation/subordinates``, ``/admin/v1/federation/trust-marks``).

The federation keys are a key ring of their own (:mod:`gateway.keys`), in their own file
(``TONGXING_FEDERATION_KEYS_FILE``), never the ring that signs tokens.
"""
