"""Public routes of the visitors module, each with its own authentication (not a bearer token):

- ``GET /v/qr/{payload}.svg``: the pass's QR image; the payload carries its own MAC.
- ``GET|POST /v/a/{token}``: the one-tap link sent by SMS/WhatsApp. GET shows the request with
  Approve / Deny buttons (a GET never decides: link previewers and scanners open links), POST
  applies the answer. The token is signed, names the approval and the person, and expires.
- ``POST /api/webhooks/twilio/visitor-gather?token=...``: the digit pressed in the voice call;
  verified by ``X-Twilio-Signature`` and by the signed token.
- ``POST /api/visitors/anpr``: plate reads from cameras, authenticated by ``X-Camera-Key``.

They are left out of the OpenAPI schema (their clients are Twilio, cameras and a phone's browser).
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody
from litestar.response import Template
from markupsafe import Markup

from app.auth.roles import own_auth
from app.deps import SettingsDep
from app.errors import AppError, Forbidden, NotFound
from app.visitors import anpr, approvals, codes
from app.visitors.approvals import Decision
from app.visitors.common import VisitorDeps, unit_labels
from app.visitors.controllers import VISITOR_DEPENDENCIES, VisitorDepsDep
from app.visitors.ladder import GATHER_PATH, LINK_PATH
from notifications.voice import gather_twiml, say_twiml
from notifications.webhooks import verified_params
from schema.visitors import Visit, VisitorApproval, VisitorPass

DIGITS: dict[str, Decision] = {"1": "approved", "2": "denied"}
DECISIONS: dict[str, Decision] = {"approved": "approved", "denied": "denied", "leave_at_gate": "leave_at_gate"}
WORDS = {"approved": "approved", "denied": "denied", "leave_at_gate": "asked to leave it at the gate"}


@get("/v/qr/{payload:str}", opt=own_auth("signed_path"), tags=["visitor links"], dependencies=VISITOR_DEPENDENCIES)
async def qr_image(payload: FromPath[str], vdeps: VisitorDepsDep) -> Response[bytes]:
    text = payload.removesuffix(".svg")
    parsed = codes.parse_qr(vdeps.settings, text)
    if parsed is None:
        raise NotFound("no such pass")
    row = await VisitorPass.select(VisitorPass.code_hash).where(VisitorPass.id == parsed[0]).first()
    if row is None or not codes.qr_matches(vdeps.settings, parsed[0], row["code_hash"], parsed[1]):
        raise NotFound("no such pass")
    return Response(codes.qr_svg(text), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})


def _page(title: str, body: str, status: int = 200) -> Template:
    """The link pages share the hub's stylesheet and policy: no inline style or script (``body`` is escaped HTML)."""
    return Template(
        template_name="visitors/link.html",
        context={
            "lang": "en",
            "csrf_token": "",
            "principal": None,
            "script_strings": {},
            "path": "",
            "title": title,
            "body": Markup(body),
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def _link_context(vdeps: VisitorDeps, token_text: str) -> tuple[codes.AnswerToken, dict[str, Any]]:
    token = codes.read_answer(vdeps.settings, "link", token_text)
    if token is None:
        raise Forbidden("this link is invalid or has expired")
    row = await VisitorApproval.select().where(VisitorApproval.id == token.approval_id).first()
    if row is None:
        raise NotFound("request not found")
    return token, row


@get(LINK_PATH + "{token:str}", opt=own_auth("signed_path"), tags=["visitor links"], dependencies=VISITOR_DEPENDENCIES)
async def link_page(token: FromPath[str], vdeps: VisitorDepsDep) -> Template:
    try:
        _, row = await _link_context(vdeps, token)
    except AppError as exc:
        return _page("Link not usable", f"<p>{escape(exc.detail)}</p>", exc.status)
    visit = await Visit.select(Visit.name, Visit.purpose).where(Visit.id == row["visit"]).first()
    label = (await unit_labels(row["site"], [row["unit"]])).get(row["unit"], "")
    who = escape(visit["name"] if visit else "A visitor")
    if row["status"] != "pending":
        return _page("Already answered", f"<p>{who} was already {escape(WORDS.get(row['status'], row['status']))}.</p>")
    buttons = "".join(
        f"<form method='post' class='stack'><input type='hidden' name='decision' value='{value}'>"
        f"<button type='submit' class='answer {value}'>{label_}</button></form>"
        for value, label_ in (("approved", "Approve"), ("denied", "Deny"), ("leave_at_gate", "Leave at gate"))
    )
    purpose = f" ({escape(visit['purpose'])})" if visit and visit["purpose"] else ""
    return _page(f"Visitor for {label}", f"<p>{who}{purpose} is waiting at the gate.</p>{buttons}")


@post(LINK_PATH + "{token:str}", opt=own_auth("signed_path"), tags=["visitor links"], dependencies=VISITOR_DEPENDENCIES)
async def link_answer(token: FromPath[str], vdeps: VisitorDepsDep, request: Request[Any, Any, Any]) -> Template:
    try:
        parsed, row = await _link_context(vdeps, token)
    except AppError as exc:
        return _page("Link not usable", f"<p>{escape(exc.detail)}</p>", exc.status)
    form = await request.form()
    decision = DECISIONS.get(str(form.get("decision", "")))
    if decision is None:
        return _page("Choose an answer", "<p>Please use one of the buttons.</p>", 422)
    try:
        await approvals.answer(
            vdeps,
            row["site"],
            parsed.approval_id,
            decision,
            person_id=parsed.person_id,
            via="link",
        )
    except AppError as exc:
        if exc.status == 409 and exc.extra:
            word = WORDS.get(str(exc.extra.get("decision")), "answered")
            return _page("Already answered", f"<p>This visitor was already {escape(word)}.</p>", 409)
        raise
    return _page("Thank you", f"<p>The visitor was {escape(WORDS[decision])}. The guard has been told.</p>")


def _twiml(text: str) -> Response[bytes]:
    return Response(text.encode(), media_type=MediaType.XML, status_code=200)


@post(
    GATHER_PATH,
    opt=own_auth("twilio_signature"),
    tags=["webhooks"],
    status_code=200,
    dependencies=VISITOR_DEPENDENCIES,
)
async def voice_gather(
    request: Request[Any, Any, Any], settings: SettingsDep, vdeps: VisitorDepsDep
) -> Response[bytes]:
    params = await verified_params(request, settings)
    token = codes.read_answer(settings, "voice", request.query_params.get("token") or "")
    if token is None:
        return _twiml(say_twiml("This request has expired. Goodbye."))
    row = await VisitorApproval.select(VisitorApproval.site).where(VisitorApproval.id == token.approval_id).first()
    if row is None:
        return _twiml(say_twiml("This request no longer exists. Goodbye."))
    decision = DIGITS.get((params.get("Digits") or "").strip())
    if decision is None:
        prompt = "Press 1 to approve the visitor, or press 2 to deny."
        return _twiml(
            gather_twiml(
                prompt, settings.public_link(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            )
        )
    try:
        await approvals.answer(
            vdeps,
            row["site"],
            token.approval_id,
            decision,
            person_id=token.person_id,
            via="voice",
        )
    except AppError as exc:
        if exc.status == 409 and exc.extra:
            word = WORDS.get(str(exc.extra.get("decision")), "answered")
            return _twiml(say_twiml(f"This visitor was already {word}. Thank you. Goodbye."))
        raise
    return _twiml(say_twiml(f"Thank you. The visitor is {WORDS[decision]}. Goodbye."))


@post(
    "/api/visitors/anpr",
    opt=own_auth("camera_key"),
    tags=["visitors"],
    status_code=201,
    dependencies=VISITOR_DEPENDENCIES,
)
async def anpr_read(
    request: Request[Any, Any, Any], vdeps: VisitorDepsDep, data: JSONBody[anpr.PlateRead]
) -> anpr.ReadResult:
    camera = await anpr.authenticate(request.headers.get(anpr.HEADER))
    return await anpr.record_read(vdeps, camera, data)


PUBLIC_ROUTES = [qr_image, link_page, link_answer, voice_gather, anpr_read]
