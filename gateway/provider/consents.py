"""A person's account page: their consents, their second factor, their recent sign-ins and the
regions their identity is linked through.

Consents: what the person agreed to release to which portal, and withdrawing it. Withdrawing a
consent means the portal gets those claims only after asking again; tokens already issued are
not recalled (they expire on their own, as their claims were released then).

The second factor: when it was bound and last used; binding a first one or replacing it needs
the proof of NIST SP 800-63B §6.1.2.1 (:class:`gateway.mfa.BindingRule`: a fresh region sign-in
that vouched at least ``loa2``), removing it a current code from it. Binding never raises the
session that binds (THREAT_MODEL row 4); see ``docs/security/second-factor.md``. Pages that show
a secret (the key, its QR code, the recovery codes) are never cached.

Recent sign-ins come from the audit trail (:mod:`gateway.audit`): the last 20, each with the
portal, the region, the time and the level reached, so a person can spot a sign-in that was not
theirs (issue 14); the linked regions from the store's subject links (THREAT_MODEL row 2).
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Final

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.audit import SIGN_IN_KINDS
from gateway.errors import LoginRequired
from gateway.mfa import BindingRule, MfaError
from gateway.observe import ConsentWithdrawn, FactorBound, FactorRemoved
from gateway.provider import csrf
from gateway.provider.answers import session_id
from gateway.provider.labels import CLAIM_LABELS
from gateway.provider.stepup import client_ip, form_page, no_store
from gateway.registry import Names
from gateway.services import Services, current_services
from gateway.store.contract import SsoSession

blueprint = Blueprint("consents", __name__)
FORM = "consents"  # the CSRF purpose of the account page's buttons
BINDING: Final = BindingRule()
RECENT_SIGN_INS: Final = 20


@blueprint.after_request
def _no_store(response: Response) -> Response:
    """The account page names the person's portals and factor; the enrolment shows secrets."""
    return no_store(response)


def _signed_in() -> SsoSession:
    sso = current_services().sessions.find(session_id(), current_services().clock())
    if sso is None:
        raise LoginRequired()
    return sso


def _account(services: Services, sso: SsoSession, error: MfaError | None = None) -> Response:
    rows = []
    for consent in services.store.list_consents(sso.subject):
        portal = services.registry.portal(consent.client_id)
        rows.append((consent, portal))
    return form_page(
        "consents.html",
        200 if error is None else error.status,
        error,
        rows=rows,
        labels=CLAIM_LABELS,
        csrf=csrf.token(FORM),
        factor=services.totp.status(sso.subject),
        sign_ins=_recent_sign_ins(services, sso.subject),
        links=_linked_regions(services, sso.subject),
    )


@dataclass(frozen=True)
class _Shown:
    """One line of the account page: what the person sees of a record (names, not codes)."""

    names: Names | None
    key: str
    when: datetime.datetime
    region: Names | None = None
    level: str | None = None


def _recent_sign_ins(services: Services, subject: str) -> list[_Shown]:
    """The person's last :data:`RECENT_SIGN_INS` sign-ins from the audit trail, newest first:
    the portal, the region, the time and the level reached (GB/T 22239-2019 §8.1.4 records;
    issue 14: the citizen sees their own)."""
    shown = []
    for record in services.store.recent_audit(subject, SIGN_IN_KINDS, RECENT_SIGN_INS):
        entry = record.entry
        portal = services.registry.portal(entry.portal) if entry.portal else None
        region = services.registry.region(entry.region) if entry.region else None
        shown.append(
            _Shown(
                names=portal.names if portal else None,
                key=entry.portal or "",
                when=entry.occurred_at,
                region=region.names if region else None,
                level=entry.level,
            )
        )
    return shown


def _linked_regions(services: Services, subject: str) -> list[_Shown]:
    """The regions through which the person's identity is linked, oldest first."""
    shown = []
    for link in sorted(
        services.store.list_subject_links(subject), key=lambda found: found.created_at
    ):
        region = services.registry.region(link.region)
        shown.append(
            _Shown(names=region.names if region else None, key=link.region, when=link.created_at)
        )
    return shown


@blueprint.get("/consents")
def consents() -> Response:
    services = current_services()
    return _account(services, _signed_in())


@blueprint.post("/consents/revoke")
def revoke() -> Response:
    services = current_services()
    sso = _signed_in()
    csrf.require(FORM)
    client_id = request.form.get("client_id", "")
    if services.store.revoke_consent(sso.subject, client_id, services.clock()):
        services.events.emit(ConsentWithdrawn(subject=sso.subject, portal=client_id))
    return redirect(url_for("consents.consents"), code=303)


def _label(sso: SsoSession) -> str:
    name = sso.claims.get("name")
    return str(name) if name else sso.subject[:12]


def _enrol_page(services: Services, sso: SsoSession, error: MfaError | None = None) -> Response:
    enrolment = services.totp.begin_enrolment(sso.subject, _label(sso))
    qr = base64.b64encode(enrolment.qr_svg.encode()).decode()
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    return form_page(
        "mfa_enrol.html",
        200 if error is None else error.status,
        error,
        csrf=csrf.token(FORM),
        qr=qr,
        secret=grouped,
        uri=enrolment.provisioning_uri,
        action=url_for("consents.confirm_factor"),
    )


@blueprint.post("/consents/second-factor/enrol")
def enrol_factor() -> Response:
    """Bind a first factor, or replace the bound one: both need the §6.1.2.1 proof."""
    services = current_services()
    sso = _signed_in()
    csrf.require(FORM)
    BINDING.require(sso, services.clock())
    # Replaced: the proof above is the same as binding.
    if services.totp.status(sso.subject).enrolled and services.totp.remove(sso.subject):
        services.events.emit(FactorRemoved(subject=sso.subject))
    return _enrol_page(services, sso)


@blueprint.post("/consents/second-factor/confirm")
def confirm_factor() -> Response:
    """The first code from the new authenticator; the session is NOT raised by it."""
    services = current_services()
    sso = _signed_in()
    csrf.require(FORM)
    BINDING.require(sso, services.clock())
    try:
        codes = services.totp.confirm_enrolment(
            sso.subject, request.form.get("code", ""), client_ip()
        )
    except MfaError as error:
        return _enrol_page(services, sso, error)
    services.events.emit(FactorBound(subject=sso.subject))
    page = render_template("mfa_recovery.html", codes=codes, next=url_for("consents.consents"))
    return Response(page, status=200, mimetype="text/html")


@blueprint.post("/consents/second-factor/remove")
def remove_factor() -> Response:
    """Remove the bound factor with a current code from it (throttled like any check)."""
    services = current_services()
    sso = _signed_in()
    csrf.require(FORM)
    try:
        services.totp.verify(sso.subject, request.form.get("code", ""), client_ip())
    except MfaError as error:
        return _account(services, sso, error)
    if services.totp.remove(sso.subject):
        services.events.emit(FactorRemoved(subject=sso.subject))
    return redirect(url_for("consents.consents"), code=303)
