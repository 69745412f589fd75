"""The settings reference is generated: every setting, and a Limits section from the body-limit settings
and the limit constants themselves, so the document cannot drift from what the code enforces."""

from __future__ import annotations

import pytest

from api import configdoc
from api.bodylimit import BODY_LIMIT_SETTINGS, general_limit, job_limit, setting_value, write_limit
from api.config import Settings
from metricstore import nats as metric_nats
from streams.events import bounds


def test_the_committed_reference_is_the_generated_one() -> None:
    assert configdoc.TARGET.read_text() == configdoc.render(), "run `python -m api.configdoc`"


def test_every_body_limit_setting_is_listed_with_its_default() -> None:
    text = configdoc.render()
    limits = text[text.index("## Limits"):]
    defaults = Settings()
    for key, where in BODY_LIMIT_SETTINGS.items():
        default = int(setting_value(defaults, key))
        assert f"| `{key}` | {default:,} (" in limits and where in limits, key
        assert f"| `{key}` |" in text[:text.index("## Limits")], f"{key} is a documented setting too"


def test_every_limit_constant_is_listed_with_its_value_and_comment() -> None:
    limits = configdoc.render().split("## Limits", 1)[1]
    for name in ("NAME_MAX", "TEXT_MAX", "JSON_DEPTH_MAX", "INT64_MIN", "INT64_MAX", "INT32_MAX", "MESSAGE_MAX"):
        value = getattr(bounds, name)
        assert f"| `{name}` | {value:,}" in limits, name
    assert "VARCHAR(255)" in limits and "`streams.events.bounds`" in limits
    assert f"| `MESSAGE_MAX` | {metric_nats.MESSAGE_MAX:,}" in limits and "`metricstore.nats`" in limits
    int64_max_row = next(row for row in limits.splitlines() if row.startswith("| `INT64_MAX`"))
    assert "signed 64-bit" in int64_max_row, "shares the comment of the constants declared with it"


def test_a_dotted_key_that_is_no_setting_is_an_error() -> None:
    with pytest.raises(KeyError, match="max-bodies"):
        setting_value(Settings(), "main.max-bodies")


def test_the_limits_in_force_are_the_documented_settings() -> None:
    settings = Settings.model_validate({"main": {"max-body-bytes": 11, "max-job-body-bytes": 22},
                                        "metric-store": {"max-write-bytes": 33}})
    limits = [general_limit(settings), job_limit(settings), write_limit(settings)]
    assert [limit.bytes for limit in limits] == [11, 22, 33]
    assert [limit.setting for limit in limits] == list(BODY_LIMIT_SETTINGS)
    for limit in limits:
        assert setting_value(settings, limit.setting) == limit.bytes
