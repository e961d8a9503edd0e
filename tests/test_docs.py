"""Generated docs are committed and must match what the code generates."""

from __future__ import annotations

import pytest
from conftest import ROOT

from bot.docs import GENERATED
from bot.engines.registry import engines
from bot.policy import CORE_VOCABULARY, builtin_packs


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_doc_is_fresh(name: str) -> None:
    committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
    assert committed == GENERATED[name](), f"docs/{name} is stale: run `python -m bot.docs` and commit"


def test_every_rule_matches_a_documented_change_kind() -> None:
    vocabulary = set(CORE_VOCABULARY)
    for engine in engines().values():
        vocabulary |= set(engine.vocabulary)
    for pack in builtin_packs():
        for rule in pack.rules:
            assert set(rule.match) <= vocabulary, f"{rule.id} matches undocumented kinds"


def test_every_change_kind_has_a_rule() -> None:
    matched = {kind for pack in builtin_packs() for rule in pack.rules for kind in rule.match}
    for name, engine in engines().items():
        missing = set(engine.vocabulary) - matched
        assert not missing, f"{name}: change kinds no rule judges: {sorted(missing)}"
    assert set(CORE_VOCABULARY) <= matched


def test_rule_ids_and_slugs_are_unique_and_temporal_has_enough_rules() -> None:
    rules = [r for pack in builtin_packs() for r in pack.rules]
    assert len({r.id for r in rules}) == len(rules)
    assert len({r.slug for r in rules}) == len(rules)
    assert sum(r.id.startswith("TMP") for r in rules) >= 12


def test_configuration_doc_covers_every_key() -> None:
    from bot.config import Config

    text = (ROOT / "docs" / "configuration.md").read_text()

    def keys(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            out.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                out += keys(annotation, prefix + name + ".")
        return out

    for key in keys(Config):
        assert f"`{key}`" in text, f"docs/configuration.md does not document `{key}`"
