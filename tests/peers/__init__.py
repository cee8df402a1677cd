"""Loopback HTTP peers speaking the real OpenAI and Anthropic wire formats (tests only)."""

from tests.peers.anthropic_peer import AnthropicPeer
from tests.peers.base import RecordedRequest, ScriptedReply, ToolCall
from tests.peers.openai_peer import OpenAIPeer

__all__ = ["AnthropicPeer", "OpenAIPeer", "RecordedRequest", "ScriptedReply", "ToolCall"]
