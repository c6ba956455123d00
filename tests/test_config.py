"""Settings precedence: defaults < config file < environment < flags."""

from __future__ import annotations

import re

import pytest

from appliance.config import ConfigError, Settings, load_settings
from tests.support import ROOT


def test_defaults(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.rate_limit_authenticated == 100
    assert settings.database_path == tmp_path / "appliance.db"


def test_default_data_dir_is_under_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = load_settings({}, environ={})
    assert settings.data_path == tmp_path / ".local" / "share" / "appliance"


def test_each_layer_overrides_the_one_below(tmp_path):
    (tmp_path / "config.toml").write_text("port = 9001\nworkers = 7\nhost = '0.0.0.0'\n")
    env = {"APPLIANCE_PORT": "9002", "APPLIANCE_WORKERS": "3"}
    settings = load_settings({"data_dir": str(tmp_path), "port": 9003}, environ=env)
    assert settings.host == "0.0.0.0"  # file
    assert settings.workers == 3  # env over file
    assert settings.port == 9003  # flag over env


def test_data_dir_from_environment(tmp_path):
    settings = load_settings({}, environ={"APPLIANCE_DATA_DIR": str(tmp_path)})
    assert settings.data_path == tmp_path


def test_engines_list_from_environment(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path)}, environ={"APPLIANCE_ENGINES": "docker, gvisor"})
    assert settings.engines == ["docker", "gvisor"]


def test_unknown_setting_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings({"data_dir": str(tmp_path)}, environ={})


def test_badly_typed_setting_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="port"):
        load_settings({"data_dir": str(tmp_path)}, environ={"APPLIANCE_PORT": "eighty"})


def test_gvisor_settings(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert settings.engines == ["docker", "gvisor"]
    assert settings.require_gvisor is False and settings.gvisor_runtime == "runsc"
    env = {"APPLIANCE_REQUIRE_GVISOR": "1", "APPLIANCE_GVISOR_RUNTIME": "gvisor-kvm"}
    settings = load_settings({"data_dir": str(tmp_path)}, environ=env)
    assert settings.require_gvisor is True and settings.gvisor_runtime == "gvisor-kvm"


@pytest.mark.parametrize(
    "env,words",
    [
        ({"APPLIANCE_ENGINES": "docker,lxc"}, "lxc"),
        ({"APPLIANCE_ENGINES": ""}, "at least one"),
        ({"APPLIANCE_REQUIRE_GVISOR": "true", "APPLIANCE_ENGINES": "docker"}, "require_gvisor"),
        ({"APPLIANCE_REQUIRE_GVISOR": "maybe"}, "require_gvisor"),
    ],
)
def test_bad_engine_settings_are_refused(tmp_path, env, words):
    with pytest.raises(ConfigError, match=words):
        load_settings({"data_dir": str(tmp_path)}, environ=env)


def test_every_setting_is_documented_by_name():
    """docs/configuration.md has a table row `| `name` | default | meaning |` for each
    field of Settings, and no row for a setting that does not exist."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc, re.MULTILINE))
    fields = set(Settings.__struct_fields__)
    assert not fields - documented, f"settings missing from docs/configuration.md: {sorted(fields - documented)}"
    assert not documented - fields, f"docs/configuration.md documents unknown settings: {sorted(documented - fields)}"


@pytest.mark.parametrize("value", ["host", "none", " "])
def test_egress_network_must_be_one_a_proxy_can_join(tmp_path, value):
    assert load_settings({"data_dir": str(tmp_path)}, environ={}).sandbox_egress_network == "bridge"
    with pytest.raises(ConfigError, match="sandbox_egress_network"):
        load_settings({"data_dir": str(tmp_path)}, environ={"APPLIANCE_SANDBOX_EGRESS_NETWORK": value})


def test_experiments_api_defaults(tmp_path):
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert (settings.rate_limit_read, settings.rate_limit_write, settings.rate_limit_export) == (1000, 100, 10)
    assert settings.session_ttl_seconds == 8 * 3600 and settings.models == []


def test_models_from_the_config_file_and_the_environment(tmp_path):
    (tmp_path / "config.toml").write_text(
        'port = 9001\n\n[[models]]\nname = "Local Llama"\nprovider = "ollama"\n'
        'config = { base_url = "http://127.0.0.1:11434", model = "llama3" }\n\n'
        '[[models]]\nid = "model_judge"\nname = "Judge"\nprovider = "anthropic"\nstatus = "inactive"\n'
    )
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    assert settings.port == 9001
    assert [(m.model_id, m.type, m.status) for m in settings.models] == [
        ("model_local-llama", "llm", "active"),
        ("model_judge", "llm", "inactive"),
    ]
    assert settings.models[0].config == {"base_url": "http://127.0.0.1:11434", "model": "llama3"}
    env = {"APPLIANCE_MODELS": '[{"name": "From Env", "provider": "custom"}]'}
    assert [m.model_id for m in load_settings({"data_dir": str(tmp_path)}, environ=env).models] == ["model_from-env"]


BAD_MODEL_SETTINGS = [
    ('[[models]]\nname = "x"\nprovider = "custom"\nconfig = { api_key = "sk-live-123" }\n', "api_key_env"),
    ('[[models]]\nname = "x"\nprovider = "skynet"\n', "provider"),
    ('[[models]]\nname = "x"\nprovider = "custom"\ncolour = "red"\n', "colour"),
    ('[[models]]\nname = "x"\nprovider = "custom"\nid = "Model X"\n', "id"),
    ('[[models]]\nname = "a"\nprovider = "custom"\n\n[[models]]\nname = "A"\nprovider = "custom"\n', "twice"),
    ('[[models]]\nname = "x"\nprovider = "custom"\nconfig = { temperature = 9 }\n', "temperature"),
]


@pytest.mark.parametrize("text,words", BAD_MODEL_SETTINGS, ids=[w for _, w in BAD_MODEL_SETTINGS])
def test_bad_model_settings_stop_the_appliance(tmp_path, text, words):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_settings({"data_dir": str(tmp_path)}, environ={})


def test_models_environment_must_be_json(tmp_path):
    with pytest.raises(ConfigError, match="APPLIANCE_MODELS"):
        load_settings({"data_dir": str(tmp_path)}, environ={"APPLIANCE_MODELS": "llama"})
