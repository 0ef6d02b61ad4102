"""The web face: the FastAPI app factory, the shared page layout, the error answers and the
principal dependencies that every route declares. See docs/web.md."""

from jlis.web.app import create_app

__all__ = ["create_app"]
