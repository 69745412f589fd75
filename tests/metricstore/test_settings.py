"""The `metric-store` config section: cc-backend's example parses, unknown keys and bad values are refused."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from metricstore.settings import MetricStoreSettings, parse_duration
from tests.metricstore.conftest import SPECS


def test_cc_backend_example_section() -> None:
    section = json.loads((SPECS / "configs" / "config.json").read_text())["metric-store"]
    s = MetricStoreSettings.model_validate(section)
    assert s.retention_seconds == 86400 and s.memory_cap_bytes == 100 * 1024**3
    assert s.cleanup_mode == "archive" and s.cleanup_directory == "./var/archive"
    assert [(n.subscribe_to, n.cluster_tag) for n in s.nats_subscriptions] == [("hpc-nats", "fritz"),
                                                                              ("hpc-nats", "alex")]
    assert s.flush_seconds == 1.0 and s.checkpoints.directory == "./var/checkpoints"


def test_defaults_and_legacy_archive_section() -> None:
    s = MetricStoreSettings()
    assert s.retention_seconds == 48 * 3600 and s.memory_cap_bytes == 0 and s.cleanup_mode == "delete"
    legacy = MetricStoreSettings.model_validate({"archive": {"directory": "/a", "delete-instead": False}})
    assert legacy.cleanup_mode == "archive" and legacy.cleanup_directory == "/a"


@pytest.mark.parametrize(("section", "where"), [
    ({"retention": "1h"}, "retention"),
    ({"checkpoints": {"dir": "x"}}, "checkpoints.dir"),
    ({"nats-subscriptions": [{"subject": "x"}]}, "nats-subscriptions.0"),
    ({"retention-in-memory": "1 day"}, "retention-in-memory"),
    ({"cleanup": {"mode": "compress"}}, "cleanup.mode"),
    ({"metrics": {"x": {"frequency": 0}}}, "metrics.x.frequency"),
])
def test_bad_sections_are_refused_naming_the_key(section: dict, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        MetricStoreSettings.model_validate(section)
    assert where in str(info.value)


def test_every_field_has_help_text() -> None:
    def walk(model: type) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            for arg in (*getattr(ann, "__args__", ()), ann):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    walk(arg)

    walk(MetricStoreSettings)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("500ms") == 0.5 and parse_duration("2d") == 172800
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("soon")
