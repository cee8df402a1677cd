from __future__ import annotations

import llmconfig


def test_public_api_is_explicit_and_sorted() -> None:
    assert list(llmconfig.__all__) == sorted(llmconfig.__all__)
    for name in llmconfig.__all__:
        assert hasattr(llmconfig, name), name
    assert {"get_llm", "get_embeddings", "LLMConfigService", "LLMConfigError", "Settings"} <= set(llmconfig.__all__)
