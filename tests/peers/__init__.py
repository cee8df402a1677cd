"""Loopback HTTP peers speaking the real OpenAI and Anthropic wire formats (tests only).

The peer classes are imported lazily (PEP 562) so that ``python -m tests.peers.openai_peer``
does not import the module twice (runpy warns when the package already imported it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tests.peers.base import RecordedRequest, ScriptedReply, ToolCall

if TYPE_CHECKING:
    from tests.peers.anthropic_peer import AnthropicPeer
    from tests.peers.openai_peer import OpenAIPeer

__all__ = ["AnthropicPeer", "OpenAIPeer", "RecordedRequest", "ScriptedReply", "ToolCall"]

_LAZY = {"OpenAIPeer": "tests.peers.openai_peer", "AnthropicPeer": "tests.peers.anthropic_peer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
