"""Usage, latency and cost of the calls made through get_llm / get_embeddings."""

from llmconfig.usage.recorder import UsageEvent, UsageRecorder
from llmconfig.usage.service import GroupBy, Price, PriceUpdate, UsageGroup, UsageReport, UsageService

__all__ = [
    "GroupBy",
    "Price",
    "PriceUpdate",
    "UsageEvent",
    "UsageGroup",
    "UsageRecorder",
    "UsageReport",
    "UsageService",
]
