"""The app as uvicorn's worker processes build it (``jlis serve --workers N``): each worker makes its
own from the settings in its environment. The network relay is not started here: the serving
command runs it once, in its own process, so N workers do not drain the outbox N times over."""

from __future__ import annotations

from fastapi import FastAPI

from jlis.container import Container
from jlis.settings import load_settings
from jlis.web.app import create_app


def app_from_environment() -> FastAPI:
    return create_app(Container(load_settings()))
