"""The OpenAI-compatible gateway: ``/v1`` requests answered by the provider configured for an interaction type.

* :mod:`~llmconfig.gateway.service`: :class:`Gateway`, resolution, the fallback chain, usage records;
* :mod:`~llmconfig.gateway.requests`: what is checked in a request, and how configured parameters fill it;
* :mod:`~llmconfig.gateway.anthropic`: the translation to and from Anthropic's Messages API (pure functions);
* :mod:`~llmconfig.gateway.streams`: server-sent events on the way through;
* :mod:`~llmconfig.gateway.upstream`: the guarded aiohttp session every request leaves through;
* :mod:`~llmconfig.gateway.errors`: OpenAI-shaped errors.

A domain package: no FastAPI or Starlette here (the HTTP face is ``llmconfig.api.openai_compat``).
"""

from llmconfig.gateway.errors import GatewayError
from llmconfig.gateway.service import Gateway, Reply, StreamReply
from llmconfig.gateway.upstream import Upstream

__all__ = ["Gateway", "GatewayError", "Reply", "StreamReply", "Upstream"]
