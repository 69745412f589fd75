"""Every config.json key acts or is refused: the settings models walked against what the product reads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from api.config import Settings
from api.unsupported import NOT_SUPPORTED, is_listed, set_to_other_than_default
from tests.support.settings_reads import keys, product_reads, unread


def acceptable_unread(all_keys: list[str], unread_keys: list[str], registry: dict[str, str]) -> list[str]:
    """The unread keys that are a problem: not in the registry, and not a section of only listed keys."""
    def only_listed_below(section: str) -> bool:
        below = [k for k in all_keys if k.startswith(section + ".")]
        return bool(below) and all(is_listed(k, registry) for k in below)

    return [k for k in unread_keys if not is_listed(k, registry) and not only_listed_below(k)]


def test_every_key_is_read_by_the_product_or_listed_as_not_supported() -> None:
    all_keys = keys(Settings)
    missing = acceptable_unread([k.dotted for k in all_keys], unread(all_keys, product_reads()), NOT_SUPPORTED)
    assert missing == [], (
        f"settings nothing in the product reads: {missing}; make them act, or add them to "
        "api.unsupported.NOT_SUPPORTED so a config setting them is refused at start"
    )


def test_every_listed_key_exists_and_is_really_unread() -> None:
    """The registry is the one escape hatch: it may not name a key that does not exist or that acts."""
    all_keys = keys(Settings)
    unread_keys = set(unread(all_keys, product_reads()))
    settings = Settings()
    for key in NOT_SUPPORTED:
        assert set_to_other_than_default(settings, key) is False, key  # KeyError for a key that does not exist
        assert key in unread_keys, f"{key} is read by the product: take it out of NOT_SUPPORTED"


# -- the checker itself, on a synthetic package -------------------------------------------------------------

SYNTHETIC_SETTINGS = '''
from pydantic import BaseModel, Field, field_validator


class Inner(BaseModel):
    depth: int = Field(default=1, alias="depth-limit")
    width: int = 2

    @field_validator("width")
    @classmethod
    def _positive(cls, value: int) -> int:
        return value


class Outer(BaseModel):
    inner: Inner = Field(default_factory=Inner)
    forgotten_section: Inner = Field(default_factory=Inner, alias="forgotten-section")
    window: str = "1h"
    hidden: str = ""
    brand_new_key: int = Field(default=0, alias="brand-new-key")

    @property
    def window_seconds(self) -> int:
        return int(self.window[:-1]) * 3600

    @property
    def never_used(self) -> str:
        return self.hidden
'''

SYNTHETIC_PRODUCT = '''
def run(settings):
    limit = settings.inner.depth            # attribute access
    span = settings.window_seconds          # through a property of the settings model
    wide = getattr(settings.inner, "width") # lookup by name
    return limit, span, wide, settings.forgotten_section_count  # a different name: not a read
'''


def synthetic_model(tmp_path: Path) -> type[BaseModel]:
    """The `Outer` model of the synthetic settings module under `tmp_path`."""
    spec = importlib.util.spec_from_file_location("synthetic_settings", tmp_path / "pkg" / "settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synthetic_settings"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["synthetic_settings"]
    model: type[BaseModel] = module.Outer
    return model


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, type[BaseModel]]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "settings.py").write_text(SYNTHETIC_SETTINGS)
    (tmp_path / "pkg" / "work.py").write_text(SYNTHETIC_PRODUCT)
    return tmp_path, synthetic_model(tmp_path)


def test_checker_finds_exactly_the_unread_keys_of_a_synthetic_model(synthetic: tuple[Path, type[BaseModel]]) -> None:
    root, model = synthetic
    read = product_reads(root, packages=("pkg",), settings_modules=("pkg/settings.py",))
    found = unread(keys(model), read)
    # `hidden` is used only by a property nobody reads; the forgotten section's keys share names with read
    # keys but their section is never read; the validator on `width` does not count as a read.
    assert found == ["forgotten-section", "forgotten-section.depth-limit", "forgotten-section.width",
                     "hidden", "brand-new-key"]


def test_a_newly_added_unread_key_fails_unless_listed(synthetic: tuple[Path, type[BaseModel]]) -> None:
    root, model = synthetic
    all_keys = keys(model)
    found = unread(all_keys, product_reads(root, packages=("pkg",), settings_modules=("pkg/settings.py",)))
    dotted = [k.dotted for k in all_keys]
    registry = {"forgotten-section.depth-limit": "x", "forgotten-section.width": "x", "hidden": "x"}
    assert acceptable_unread(dotted, found, registry) == ["brand-new-key"]
    registry["brand-new-key"] = "not acted on yet"
    assert acceptable_unread(dotted, found, registry) == []


def test_a_validator_or_an_unused_property_does_not_count_as_reading(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "settings.py").write_text(SYNTHETIC_SETTINGS)
    (tmp_path / "pkg" / "work.py").write_text("def run(s):\n    return s.inner.depth\n")
    read = product_reads(tmp_path, packages=("pkg",), settings_modules=("pkg/settings.py",))
    assert "width" not in read.names and "depth" in read.names
    assert unread(keys(synthetic_model(tmp_path)), read) == [
        "inner.width", "forgotten-section", "forgotten-section.depth-limit", "forgotten-section.width", "window",
        "hidden", "brand-new-key"]
