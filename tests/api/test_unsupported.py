"""Keys ccstream does not act on yet: accepted at their default, refused at start otherwise, naming the key."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.config import ConfigError, load_settings, parse_settings
from api.unsupported import NOT_SUPPORTED, refusals, set_to_other_than_default
from tests.support.specs import find_specs

ROOT = Path(__file__).resolve().parents[2]
SPECS = find_specs()


def test_a_listed_key_at_a_value_that_changes_behaviour_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"main": {"enable-job-taggers": true, "static-files": "./web"}}')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}: `main.static-files` is not supported yet: ")
    assert lines[1].startswith(f"{path}: `main.enable-job-taggers` is not supported yet: ")
    assert all("remove the key" in line for line in lines)


def test_listed_keys_at_their_defaults_are_accepted() -> None:
    """cc-backend config files spell out harmless defaults; they must keep loading."""
    settings = parse_settings(orjson.dumps({
        "main": {"embed-static-files": True, "systemd-unit": "clustercockpit", "short-running-jobs-duration": 300,
                 "session-max-age": "168h", "emission-constant": 0},
        "cron": {"commit-job-worker": "1m", "duration-worker": "5m", "footprint-worker": "10m"},
        "metric-store": {"num-workers": 0, "checkpoints": {"file-format": "wal"}},
    }))
    assert settings.main.embed_static_files is True


def test_a_listed_section_is_refused_when_present() -> None:
    with pytest.raises(ConfigError, match=r"`auth.ldap` is not supported yet"):
        parse_settings('{"auth": {"ldap": {"url": "ldap://localhost"}}}')
    with pytest.raises(ConfigError, match=r"`main.resampling.trigger` is not supported yet"):
        parse_settings('{"main": {"resampling": {"trigger": 30}}}')
    assert parse_settings('{"main": {"resampling": {"resolutions": [240, 60]}}}').main.resampling is not None


@pytest.mark.parametrize("doc, key", [
    ({"metric-store": {"num-workers": 4}}, "metric-store.num-workers"),
    ({"metric-store": {"checkpoints": {"file-format": "json"}}}, "metric-store.checkpoints.file-format"),
    ({"main": {"embed-static-files": False}}, "main.embed-static-files"),
    ({"ui-file": "ui-config.json"}, "ui-file"),
    ({"main": {"session-max-age": "24h"}}, "main.session-max-age"),
])
def test_each_kind_of_listed_key_is_refused(doc: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config.json: `{key}` is not supported yet"):
        parse_settings(orjson.dumps(doc))


def test_every_listed_key_can_be_refused() -> None:
    """Each registry entry resolves to a field, and a changed value of it is noticed."""
    from api.config import Settings

    for key in NOT_SUPPORTED:
        assert not set_to_other_than_default(Settings(), key)
    assert refusals(Settings()) == []


def test_cc_backend_example_config_is_refused_for_exactly_what_ccstream_does_not_do_yet() -> None:
    raw = orjson.loads((SPECS / "configs" / "config.json").read_bytes())
    with pytest.raises(ConfigError) as caught:
        parse_settings(orjson.dumps(raw))
    named = [line.split("`")[1] for line in str(caught.value).splitlines()]
    assert sorted(named) == ["main.enable-job-taggers", "ui-file"]
    trimmed = copy.deepcopy(raw)
    for key in ("enable-job-taggers",):
        del trimmed["main"][key]
    del trimmed["ui-file"]
    settings = parse_settings(orjson.dumps(trimmed))
    assert settings.main.https_cert_file.endswith("fullchain.pem")


def test_ccstream_serve_with_a_listed_key_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"main": {"https-cert-file": "", "enable-job-taggers": true}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"ccstream: config.json: `main.enable-job-taggers` is not supported yet: "
                                   f"{NOT_SUPPORTED['main.enable-job-taggers']}")
    assert not (tmp_path / "var").exists()  # nothing was started or created
