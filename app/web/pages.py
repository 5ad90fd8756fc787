"""The pages' common machinery: templates, static assets, sign-in and sign-out, the home redirect, and
HTML error pages for page routes (a browser gets a page it can act on, never a JSON problem).

A page route is a normal Litestar handler declared with ``opt=page_access(...)``: the same role guard and
site scoping as the API, plus ``page=True`` so a refused caller gets the sign-in page (401) or the
"not for your role" page (403) instead of JSON. Its handler returns ``render(request, "x.html", ...)``.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler

from app.auth import service as auth_service
from app.auth.middleware import request_session
from app.auth.principal import Principal
from app.auth.roles import ALL_ROLES, PUBLIC, STAFF, Role, allow
from app.auth.throttle import LoginThrottled
from app.errors import AppError, set_page_error_renderer
from app.web import i18n
from app.web.sessions import (
    CSRF_FORM_FIELD,
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    create_session,
    csrf_matches,
    end_session,
)

WEB_DIR: Final = Path(__file__).parent
STATIC_DIR: Final = WEB_DIR / "static"
TEMPLATE_DIR: Final = WEB_DIR / "templates"
STATIC_PATH: Final = "/static"
PAGE_KEY: Final = "page"
# Where each role starts after signing in, first match wins.
HOME_BY_ROLE: Final[tuple[tuple[frozenset[Role], str], ...]] = (
    (STAFF, "/control"),
    (frozenset({Role.GUARD}), "/guard"),
    (frozenset({Role.OCCUPANT}), "/app"),
)


# The sign-in page and the redirects before it: open to anyone, and their errors are pages too.
PUBLIC_PAGE: Final[dict[str, Any]] = {**PUBLIC, PAGE_KEY: True}


def page_access(*roles: Role) -> dict[str, Any]:
    """``opt`` for a page route: who may open it, and that refusals are pages, not JSON."""
    return {**allow(*roles), PAGE_KEY: True}


def home_for(principal: Principal) -> str:
    for roles, path in HOME_BY_ROLE:
        if principal.has_any(roles):
            return path
    return "/account"


@cache
def asset_version(relative: str) -> str:
    """A content hash in each asset URL: a changed file gets a new URL, so caches may keep the old one long."""
    return hashlib.sha256((STATIC_DIR / relative).read_bytes()).hexdigest()[:10]


def asset(relative: str) -> str:
    return f"{STATIC_PATH}/{relative}?v={asset_version(relative)}"


def template_config() -> TemplateConfig[Any]:
    from litestar.plugins.jinja import JinjaTemplateEngine

    def configure(engine: JinjaTemplateEngine) -> None:
        environment = engine.engine
        i18n.install(environment)
        environment.globals["asset"] = asset
        environment.globals["languages"] = i18n.LANGUAGES

    config: TemplateConfig[Any] = TemplateConfig(
        directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=configure
    )
    return config


def static_router() -> ControllerRouterHandler:
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        # URLs carry the content hash (asset()), so a cached copy is never stale.
        cache_control=CacheControlHeader(public=True, max_age=7 * 24 * 3600),
        include_in_schema=False,
        opt=PUBLIC,
        name="static",
    )


def language_of(request: Request[Any, Any, Any]) -> str:
    return i18n.choose_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language"))


def render(request: Request[Any, Any, Any], template: str, *, status_code: int = 200, **context: Any) -> Template:
    """A page: the template with what every page needs (language, CSRF token, the signed-in person)."""
    language = language_of(request)
    session = request_session(request)
    user = request.scope.get("user")
    return Template(
        template_name=template,
        context={
            "lang": language,
            "csrf_token": session.csrf if session else "",
            "principal": user if isinstance(user, Principal) else None,
            "script_strings": i18n.script_strings(language),
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _cookie(name: str, value: str, settings: Any, *, max_age: int | None, path: str = "/") -> Cookie:
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: an open redirect would let a phishing link borrow our sign-in page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _login_page(
    request: Request[Any, Any, Any], *, error: str | None = None, status_code: int = 200, username: str = ""
) -> Template:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=token,
        error=error,
        username=username,
        next=_safe_next(request.query_params.get("next")) or "",
    )
    response.cookies.append(_cookie(LOGIN_CSRF_COOKIE, token, request.app.state.settings, max_age=3600, path="/login"))
    return response


@get("/login", opt=PUBLIC_PAGE, name="login-page")
async def login_page(request: Request[Any, Any, Any]) -> Template:
    return _login_page(request)


@post("/login", opt=PUBLIC_PAGE, status_code=303, name="login-submit")
async def login_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.app.state
    form = await request.form()
    username = str(form.get("username", "")).strip()
    # Login CSRF: the form's token must match the cookie set with it (double submit), so another site
    # cannot sign a victim into the attacker's account.
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), str(form.get(CSRF_FORM_FIELD, ""))):
        return _login_page(request, error="The sign-in form expired. Please try again.", status_code=403)
    try:
        who = await auth_service.verify_credentials(
            settings=state.settings,
            redis=state.redis,
            directory=state.directory,
            username=username,
            password=str(form.get("password", "")),
            site_slug=str(form.get("site", "")).strip() or None,
            client_address=request.client.host if request.client else "unknown",
        )
    except LoginThrottled as exc:
        page = _login_page(request, error=str(exc), status_code=429, username=username)
        page.headers["Retry-After"] = str(exc.retry_after_seconds)
        return page
    except AppError as exc:
        return _login_page(request, error=exc.detail, status_code=exc.status, username=username)
    session_id, _ = await create_session(
        state.settings, state.redis, person_id=who.person_id, site_id=who.site_id, roles=who.roles
    )
    principal = Principal(person_id=who.person_id, site_id=who.site_id, roles=who.roles, token_id="", expires_at=0)
    target = _safe_next(str(form.get("next", ""))) or home_for(principal)
    response: Redirect = Redirect(target, status_code=303)
    response.cookies.append(
        _cookie(SESSION_COOKIE, session_id, state.settings, max_age=state.settings.session_max_seconds)
    )
    response.cookies.append(_cookie(LOGIN_CSRF_COOKIE, "", state.settings, max_age=0, path="/login"))
    return response


@post("/logout", opt={**allow(*ALL_ROLES), "csrf": "form", PAGE_KEY: True}, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.app.state
    session = request_session(request)
    form = await request.form()
    if session is None or not csrf_matches(session.csrf, str(form.get(CSRF_FORM_FIELD, ""))):
        raise PermissionDeniedException(detail="the CSRF token is missing or wrong; reload the page")
    await end_session(state.settings, state.redis, request.cookies.get(SESSION_COOKIE))
    response: Redirect = Redirect("/login", status_code=303)
    response.cookies.append(_cookie(SESSION_COOKIE, "", state.settings, max_age=0))
    return response


@get("/", opt=PUBLIC_PAGE, name="home")
async def home(request: Request[Any, Any, Any]) -> Redirect:
    from app.web.sessions import load_session

    state = request.app.state
    found = await load_session(state.settings, state.redis, request.cookies.get(SESSION_COOKIE))
    # 303, as every other redirect of the pages (and as the document says).
    if found is None:
        return Redirect("/login", status_code=303)
    digest, session = found
    return Redirect(home_for(session.principal(digest, state.settings, 0)), status_code=303)


@get("/lang/{code:str}", opt=PUBLIC_PAGE, name="language")
async def choose_language(request: Request[Any, Any, Any], code: FromPath[str]) -> Redirect:
    """Switch the pages' language (a cookie that scripts may not read), then go back where the person was."""
    back = _safe_next(request.query_params.get("next")) or "/"
    response = Redirect(back, status_code=303)
    if code in i18n.LANGUAGES:
        response.cookies.append(
            Cookie(
                key=LANGUAGE_COOKIE,
                value=code,
                max_age=365 * 24 * 3600,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.app.state.settings.secure_cookies,
            )
        )
    return response


@get("/account", opt=page_access(*ALL_ROLES), name="account")
async def account(request: Request[Any, Any, Any]) -> Template:
    """Where a person without a console of their own lands (technicians, platform admins): who they are
    and the pages their roles open."""
    user = request.user
    consoles = [path for roles, path in HOME_BY_ROLE if isinstance(user, Principal) and user.has_any(roles)]
    if isinstance(user, Principal) and user.has_any(STAFF | {Role.GUARD, Role.TECHNICIAN}):
        consoles.append("/attendance")  # check in from the phone (app.web.staff)
    return render(request, "account.html", consoles=consoles)


# ---------------------------------------------------------------------------- errors on page routes


def _is_page(request: Request[Any, Any, Any]) -> bool:
    """A page route, or a browser asking for a page that does not exist (outside the API)."""
    handler = request.scope.get("route_handler")
    if handler is not None and getattr(handler, "opt", None):
        return bool(handler.opt.get(PAGE_KEY))
    path = request.url.path
    wants_html = "text/html" in request.headers.get("accept", "")
    return wants_html and not path.startswith(("/api/", "/ws", "/schema", STATIC_PATH))


def page_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any] | None:
    """The HTML answer to an error on a page route, or None for API routes (they keep problem details)."""
    if not _is_page(request):
        return None
    if isinstance(exc, NotAuthorizedException):
        return Redirect(f"/login?next={quote(request.url.path)}", status_code=303)
    status = int(getattr(exc, "status_code", None) or getattr(exc, "status", None) or 500)
    detail = getattr(exc, "detail", "") if isinstance(exc, HTTPException | AppError) else ""
    if isinstance(exc, PermissionDeniedException):
        status = 403
    template = "forbidden.html" if status == 403 else "error.html"
    return render(request, template, status_code=int(status), detail=detail, status=int(status))


PAGE_ROUTES: list[ControllerRouterHandler] = [login_page, login_submit, logout, home, choose_language, account]


def pages_router(console_routes: list[ControllerRouterHandler]) -> Router:
    set_page_error_renderer(page_error_response)
    return Router(path="/", route_handlers=[*PAGE_ROUTES, *console_routes], tags=["pages"])
