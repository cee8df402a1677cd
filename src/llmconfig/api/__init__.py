"""The HTTP surface: FastAPI app factory, dependencies, routers and error mapping."""

from llmconfig.api.app import create_app

__all__ = ["create_app"]
