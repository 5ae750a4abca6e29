"""The store on SQL: SQLite (embedded default) and PostgreSQL, with SQLAlchemy Core.

One module per aggregate, as the contract is split (:mod:`gateway.store.contract`):
:mod:`.subjects`, :mod:`.registry`, :mod:`.tokens` (grants, codes, access and refresh tokens,
with the grant rules of :mod:`.grants`), :mod:`.sessions`,
:mod:`.pending_authorizations`, :mod:`.second_factors`, :mod:`.attempts`, :mod:`.consents`,
:mod:`.replay`; :mod:`.base` holds the engine and the transaction helpers they share, and
:mod:`.store` composes them into :class:`SqlStore`.

How the single-use and one-live-token guarantees hold on both engines:

* Single use (codes, ``state``, session end) is one conditional ``UPDATE ... WHERE <still
  unused> RETURNING``. On PostgreSQL a concurrent updater blocks on the row lock and re-checks
  the condition once the first one commits, so it matches nothing; on SQLite every write
  transaction starts with ``BEGIN IMMEDIATE``, so writers run one at a time.
* Everything that changes a refresh token family (issue, rotation, revocation) first locks the
  grant row (``SELECT ... FOR UPDATE`` on PostgreSQL; the database lock on SQLite), and a
  partial unique index allows one live token per grant whatever happens. On PostgreSQL the
  successful issue and rotation are each one statement (the lock in a CTE, the inserts fed by
  the UPDATE's ``RETURNING``), run in autocommit; when such a statement writes nothing, the
  transactional path runs and says why (reuse, expiry, revocation), so every refusal is
  decided under the lock as before.
* A logout ends the session and revokes its grants in one transaction; a grant is made in a
  session only under a shared lock on the session's row, so none is made behind a logout's back.
* Identity linking inserts with ``ON CONFLICT DO NOTHING`` and reads back, so concurrent first
  logins agree on one subject.
* A TOTP time step is accepted by one conditional ``UPDATE ... WHERE last_accepted_step <
  :step`` (the same row-lock argument as single use), and a recovery code is spent by
  ``UPDATE ... WHERE used_at IS NULL``.
* An attempt counter is made to exist (``INSERT ... ON CONFLICT DO NOTHING``), then locked
  (``SELECT ... FOR UPDATE``) and updated, so concurrent failures from several replicas are all
  counted.
"""

from gateway.store.sql.store import SqlStore

__all__ = ["SqlStore"]
