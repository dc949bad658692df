"""Who may open the served console: an operator token in the link, exchanged for a session cookie (as Jupyter
does), checked on every page, file and websocket.

The link ``bzzz-console serve`` prints holds a token made for this run only (never written anywhere); other
operators sign in with their own operator tokens (``bzzz-console mcp token --operator --name NAME``), so every
decision names who made it. Agent tokens are refused: an outside agent is not an operator. A revoked token ends
its sessions at their next request. The cookie is HttpOnly and SameSite=Strict, and a websocket must come from
this server's own page (its Origin), so another site cannot drive a signed-in operator's console.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

from bzzz_console.security.tokens import TokenBook, digest

COOKIE = "bzzz_console_session"


@dataclass(frozen=True)
class SignedIn:
    operator: str
    token_id: str
    record_id: str | None
    """The token book's record (checked for revocation on every request); None for this run's own link."""


OPERATOR = web.RequestKey("operator", SignedIn)
"""Who a request is from, once the gate let it through."""


class OperatorGate:
    def __init__(self, tokens: TokenBook, link_operator: str) -> None:
        self._tokens = tokens
        self.link_token = "bzzz_" + secrets.token_urlsafe(32)
        self._link = SignedIn(link_operator, "link-" + digest(self.link_token)[:8], None)
        self._cookies: dict[str, SignedIn] = {}

    def sign_in(self, token: str) -> SignedIn | web.Response:
        """The operator a presented token stands for, or the refusal to send back."""
        if hmac.compare_digest(token.encode(), self.link_token.encode()):
            return self._link
        found = self._tokens.authenticate(token)
        if found is None:
            return refusal(401, "This token is not valid: mistyped, revoked, or from another node.")
        principal, record = found
        if not principal.is_operator:
            return refusal(
                403,
                f"This is an agent token ({principal.name}): agents cannot operate the console. "
                "An operator signs in with an operator token: bzzz-console mcp token --operator --name NAME",
            )
        return SignedIn(principal.name, record.id, record.id)

    def who(self, request: web.Request) -> SignedIn | None:
        signed_in = self._cookies.get(request.cookies.get(COOKIE, ""))
        if signed_in is None:
            return None
        if signed_in.record_id is not None and not any(
            r.id == signed_in.record_id and r.active for r in self._tokens.records()
        ):
            self.forget(signed_in.record_id)  # revoked since: every session it opened ends here
            return None
        return signed_in

    def forget(self, record_id: str) -> None:
        for key in [k for k, s in self._cookies.items() if s.record_id == record_id]:
            del self._cookies[key]

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if "token" in request.query:
            answer = self.sign_in(request.query["token"])
            if isinstance(answer, web.Response):
                return answer
            cookie = secrets.token_urlsafe(32)
            self._cookies[cookie] = answer
            # back to the same page without the token, so it is not left in the address bar or the history
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            redirect = web.HTTPSeeOther(request.rel_url.with_query(rest))
            redirect.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path="/")
            raise redirect
        signed_in = self.who(request)
        if signed_in is None:
            return refusal(
                401,
                "This console needs an operator token: open the link bzzz-console serve printed when it "
                "started, or add ?token=YOUR_OPERATOR_TOKEN (bzzz-console mcp token --operator --name NAME).",
            )
        if request.headers.get("Upgrade", "").lower() == "websocket" and not same_origin(request):
            return refusal(403, "A websocket from another site's page is refused.")
        request[OPERATOR] = signed_in
        return await handler(request)


def same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser (a browser always sends Origin on a websocket)
        return True
    return urlsplit(origin).netloc == request.host


def refusal(status: int, message: str) -> web.Response:
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>bzzz-console</title></head>"
        f"<body><h1>bzzz-console</h1><p>{escape(message)}</p></body></html>"
    )
    return web.Response(status=status, text=page, content_type="text/html")
