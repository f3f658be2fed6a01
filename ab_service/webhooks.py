"""POST/GET /webhooks and DELETE /webhooks/<id>: where alerts are sent (admin only). A webhook's secret
is answered once, when it is created."""
from __future__ import annotations

import secrets

from flask import Blueprint, g

from ab_service.schemas import WebhookIn
from ab_service.store import current_store as store
from core.web import ApiError, json_body, parse_model

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks")
def create_webhook():
    body = parse_model(WebhookIn, json_body(), "webhook")
    secret = body.secret or "whsec_" + secrets.token_urlsafe(32)
    created = store().create_webhook(body.url, list(body.events), secret, g.actor)
    return {**created, "delivered": 0, "pending": 0, "secret": secret}, 201


@bp.get("/webhooks")
def list_webhooks():
    return {"webhooks": store().list_webhooks()}


@bp.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str):
    if not store().delete_webhook(webhook_id):
        raise ApiError(404, f"unknown webhook {webhook_id!r}", [{"field": "id", "message": "not found"}])
    return {"deleted": webhook_id}
