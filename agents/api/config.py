"""``/config``: the effective settings (secrets redacted) and ``PATCH`` of the hot-reloadable subset."""

from __future__ import annotations

from typing import Any

import structlog
from faust.web import View

from agents.api.base import body_of, endpoint, respond
from app.api.config_view import HOT, apply, effective, validated
from app.faust_app import app
from app.logging import set_level
from app.settings import get_settings

log = structlog.get_logger("cdc.api")


@app.page("/config")
class Config(View):
    @endpoint(auth=True)
    async def get(self, request: Any) -> Any:
        return respond(self, effective(get_settings()))

    @endpoint(auth=True)
    async def patch(self, request: Any) -> Any:
        settings = get_settings()
        changes = validated(settings, await body_of(request))
        apply(settings, changes)
        if "log_level" in changes:
            set_level(changes["log_level"])
        log.info("settings changed over the API", changed=changes)
        return respond(self, {"changed": changes, "hot_reloadable": sorted(HOT)})
