"""config.json: cc-backend's keys accepted, typos and wrong types refused with file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from api.config import ConfigError, Settings, load_settings, parse_settings
from tests.support.specs import find_specs

SPECS = find_specs()


def test_cc_backend_example_config_is_accepted() -> None:
    """Its syntax and keys are all cc-backend's; what ccstream refuses of it: tests/api/test_unsupported.py."""
    settings = Settings.model_validate_json((SPECS / "configs" / "config.json").read_bytes())
    assert settings.main.addr == "0.0.0.0:443"
    assert settings.main.api_subjects is not None
    assert settings.main.api_subjects.subject_job_event == "cc.job.event"
    assert settings.archive.kind == "s3" and settings.archive.bucket == "jobarchive"
    assert settings.nats is not None and settings.nats.address == "nats://0.0.0.0:4222"
    assert settings.auth.jwts.max_age == "2000h"


def test_defaults_without_file() -> None:
    settings = load_settings(None)
    assert settings.main.addr == "localhost:8080"
    assert settings.main.db == "./var/job.db"
    assert settings.event_log.path == "./var/events.db"
    assert settings.intake.park_early_stops is True


def test_unknown_key_is_named_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"main": {"adr": "x"}, "archiv": {}}')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}: unknown key 'main.adr'" in str(caught.value)
    assert f"{path}: unknown key 'archiv'" in str(caught.value)


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"config.json: key 'main.api-allowed-ips'"):
        parse_settings('{"main": {"api-allowed-ips": "*"}}')
    with pytest.raises(ConfigError, match=r"key 'archive.kind'"):
        parse_settings('{"archive": {"kind": "tape"}}')


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_settings("{main")
    with pytest.raises(ConfigError, match="top level must be a JSON object"):
        parse_settings("[]")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.json")


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out.append((key, field.description))
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out.extend(_fields(candidate, key + "."))
    return out


def test_every_setting_has_help_text_and_is_documented() -> None:
    documented = (Path(__file__).resolve().parents[2] / "configs" / "README.md").read_text()
    for key, description in _fields(Settings):
        assert description, f"setting {key} has no help text"
        assert f"`{key}`" in documented, f"setting {key} is not documented in configs/README.md"
