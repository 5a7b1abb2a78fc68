"""``/openapi.json``: the API's OpenAPI document (:mod:`app.api.openapi`)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from faust.web import View

from agents.api.base import endpoint, respond
from app.api.openapi import document
from app.faust_app import app


@app.page("/openapi.json")
class OpenApi(View):
    @endpoint()
    async def get(self, request: Any) -> Any:
        return respond(self, document(version("cass-cdc-pg")))
