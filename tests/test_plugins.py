"""Third-party providers register through the same entry-point group as the built-ins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import assay
from assay import registry

PLUGIN = """
from assay.providers.base import Backend, Provider
from assay.types import Final, ModelSpec, Usage


class ShoutBackend(Backend):
    async def generate(self, request):
        yield request.messages[-1].content.upper()
        yield Final(finish_reason="stop", usage=Usage(output_tokens=1))


class ShoutProvider(Provider):
    name = "shout"

    def models(self):
        yield ModelSpec(id="shout", provider=self.name, description="upper-cases the prompt")

    def open(self, spec, key):
        return ShoutBackend()
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny installed distribution: a module plus dist-info with an entry point."""
    (tmp_path / "assay_shout.py").write_text(PLUGIN)
    info = tmp_path / "assay_shout-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: assay-shout\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[assay.providers]\nshout = assay_shout:ShoutProvider\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.providers.cache_clear()
    yield
    sys.modules.pop("assay_shout", None)
    registry.providers.cache_clear()


def test_a_third_party_provider_is_found_and_used(installed_plugin: None) -> None:
    assert {"local", "openai", "echo", "shout"} <= set(registry.providers())
    response = assay.get_model("shout").prompt("quiet please")
    assert response.text() == "QUIET PLEASE"
    assert assay.LogStore(assay.user_dir() / "logs.db").query(1)[0]["provider"] == "shout"


def test_a_broken_plugin_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    info = tmp_path / "assay_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: assay-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[assay.providers]\nbroken = no_such_module:X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.providers.cache_clear()
    assert "echo" in registry.providers() and "broken" not in registry.providers()
    assert "skipping provider 'broken'" in capsys.readouterr().err
    registry.providers.cache_clear()
