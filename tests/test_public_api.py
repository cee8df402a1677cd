from __future__ import annotations

import llmconfig


def test_public_api_is_explicit_and_sorted() -> None:
    assert list(llmconfig.__all__) == sorted(llmconfig.__all__)
    for name in llmconfig.__all__:
        assert hasattr(llmconfig, name), name
    assert {"get_llm", "get_embeddings", "LLMConfigService", "LLMConfigError", "Settings"} <= set(llmconfig.__all__)


def test_domain_packages_do_not_import_the_web_or_cli_layers() -> None:
    import ast
    from pathlib import Path

    root = Path(llmconfig.__file__).parent
    for package in ("db", "secrets", "providers", "config"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    assert not name.startswith(("fastapi", "typer", "llmconfig.api", "llmconfig.cli")), (path, name)
