"""Who read or changed patient data, from where, and what came of it (refusals included).

One append-only ``access_events`` row per audited request, written after the answer is sent, so
it never delays the client. Routes name the case or photo concerned and its owner with
``note()``; the actor is the authenticated user (or the legacy header's, or nobody). Bodies,
passwords and tokens are never recorded. Image views by URL are recorded by the image service
itself, in the transaction that serves them.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from allcare.services.audit.access_log import AccessEntry
from allcare.services.principal import Principal, is_valid_user_id

log = logging.getLogger(__name__)

ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/auth/login"): "auth.login",
    ("GET", "/cases"): "cases.list",
    ("POST", "/cases/next-id"): "case.allocate",
    ("POST", "/cases/release-id"): "case.release",
    ("POST", "/cases"): "case.decide",
    ("POST", "/cases/uncertain"): "case.decide",
    ("POST", "/cases/reject"): "case.reject",
    ("PUT", "/cases/{case_id}"): "case.update",
    ("POST", "/cases/{case_id}/label"): "case.label",
    ("POST", "/cases/{case_id}/annotations"): "case.annotate",
    ("POST", "/check-image"): "image.upload",
    ("POST", "/active-learning/candidates"): "candidates.list",
    ("GET", "/admin/labels"): "labels.list",
    ("GET", "/admin/audit"): "audit.read",
    ("GET", "/images/{user_id}/{file_name}"): "image.view",
}


ADMIN_PREFIXES = ("/admin/", "/model/")


def note(request: Request, *, resource: str | None = None, owner: str | None = None) -> None:
    """What the request was about, once the route knows (a new case id, its owner)."""
    if resource is not None:
        request.state.audit_resource = resource
    if owner is not None:
        request.state.audit_owner = owner


def note_actor(request: Request, principal: Principal) -> None:
    request.state.principal = principal


def outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not_found"
    if status == 429:
        return "throttled"
    return "invalid" if status < 500 else "error"


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})  # what the route reads as true


def _query(scope: Scope, name: str) -> str | None:
    """A query parameter as the route reads it (the last one given)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1].strip() if values else None


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capturing_send)
        finally:
            entry = self._entry(scope, status)
            if entry is not None:
                await self._write(scope, entry)

    def _entry(self, scope: Scope, status: int) -> AccessEntry | None:
        path = getattr(scope.get("route"), "path", "")
        action = ACTIONS.get((scope["method"], path))
        if action is None and path.startswith(ADMIN_PREFIXES):
            action = "admin.request"  # every model, training and registry call, refusals too
        if action is None:
            return None
        state = scope.get("state") or {}
        if state.get("audit_skip"):
            return None  # recorded elsewhere (a served photo), or a repeat of a refusal
        principal: Principal | None = state.get("principal")
        params = scope.get("path_params") or {}
        resource = state.get("audit_resource")
        if resource is None and "case_id" in params:
            resource = f"case:{str(params['case_id'])[:40]}"
        if resource is None and action == "admin.request":
            version = params.get("version_id")
            resource = f"version:{version[:40]}" if version else f"route:{scope['method']} {path}"
        if action == "image.upload":
            if (_query(scope, "predict_only") or "").lower() in _TRUE:
                action = "image.classify"
            target = _query(scope, "case_id")
            if resource is None and target:
                resource = f"case:{target[:40]}"  # refused before the route ran (401, 422)
        actor = principal.user_id if principal else state.get("audit_actor")
        client = scope.get("client")
        return AccessEntry(
            action=action,
            resource=resource or action.split(".")[0],
            outcome=outcome(status),
            status_code=status,
            actor_id=actor if actor and is_valid_user_id(actor) else None,
            actor_kind=principal.method.value
            if principal
            else state.get("audit_actor_kind", "unauthenticated"),
            owner_id=state.get("audit_owner"),
            client=client[0] if client else None,
        )

    async def _write(self, scope: Scope, entry: AccessEntry) -> None:
        """Awaited after the answer went out: the client never waits for it, but the request
        only ends once its record is durable."""
        try:
            writer = scope["app"].state.container.access_writer
            await asyncio.wrap_future(writer.submit(entry))
        except Exception:
            log.exception("Could not record %s in the access audit", entry.action)
