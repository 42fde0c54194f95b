from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.runtime.config import SERVICES, describe, load_settings, settings_env


def test_defaults_run_one_host_with_embedded_servers() -> None:
    s = load_settings({})
    assert s.embedded == ["postgres", "nats", "redis"]
    assert s.data_dir == Path(".tessera")
    assert s.address("search") == f"127.0.0.1:{s.search_port}"
    assert s.port("gateway") == s.gateway_grpc_port
    assert len({s.port(svc) for svc in SERVICES}) == len(SERVICES), "every service needs its own port"


def test_values_are_typed() -> None:
    s = load_settings({"TESSERA_SEARCH_PORT": "9001", "TESSERA_GRACE_S": "2.5", "TESSERA_EMBEDDED": "nats, redis",
                       "TESSERA_SEARCH_ADDR": "10.0.0.7:9001", "TESSERA_SEARCH_INSTANCES": "3"})
    assert s.search_port == 9001 and s.grace_s == 2.5 and s.embedded == ["nats", "redis"]
    assert s.address("search") == "10.0.0.7:9001" and s.instances("search") == 3


@pytest.mark.parametrize(("env", "named", "says"), [
    ({"TESSERA_SEARCH_PORT": "abc"}, "TESSERA_SEARCH_PORT", "not an integer"),
    ({"TESSERA_SEARCH_PORT": "70000"}, "TESSERA_SEARCH_PORT", "not a TCP port"),
    ({"TESSERA_LOG_LEVEL": "loud"}, "TESSERA_LOG_LEVEL", "unknown value 'loud'"),
    ({"TESSERA_EMBEDDED": "postgres,mysql"}, "TESSERA_EMBEDDED", "unknown value 'mysql'"),
    ({"TESSERA_DISCOVERY": "consul"}, "TESSERA_DISCOVERY", "expected one of static, nats"),
    ({"TESSERA_GRACE_S": "soon"}, "TESSERA_GRACE_S", "not a number"),
    ({"TESSERA_SERCH_PORT": "1"}, "TESSERA_SERCH_PORT", "no such setting"),
    ({"TESSERA_DB_POOL_MIN": "5", "TESSERA_DB_POOL_MAX": "2"}, "TESSERA_DB_POOL_MAX", "not below"),
    ({"TESSERA_CHAT_INSTANCES": "0"}, "TESSERA_CHAT_INSTANCES", "at least 1"),
])
def test_bad_values_name_the_setting(env: dict[str, str], named: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    message = str(err.value)
    assert err.value.setting == named
    assert message.startswith(f"config: {named}:") and says in message
    assert "\n" not in message


def test_settings_round_trip_through_the_environment() -> None:
    s = load_settings({"TESSERA_EMBEDDED": "nats", "TESSERA_EMBED_PORT": "9100"})
    assert load_settings(settings_env(s)) == s


def test_every_setting_is_documented() -> None:
    rows = describe()
    assert len(rows) == len(settings_env(load_settings({})))
    assert all(var.startswith("TESSERA_") and doc for var, _, doc in rows)


def test_tessera_config_prints_every_setting_and_no_secret(tmp_path: Path) -> None:
    """`tessera config`: every TESSERA_* variable with its default and meaning; a setting's secret value never."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}, "TESSERA_DATA_DIR": str(tmp_path), "COLUMNS": "400",
           "TESSERA_DATABASE_URL": "postgresql://tessera:hunter2hunter2@127.0.0.1:5999/tessera"}
    out = subprocess.run([sys.executable, "-m", "shared.cli", "config"], cwd=Path(__file__).resolve().parents[4], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = [row[0] for row in describe()]
    assert len(names) > 50 and [n for n in names if n not in out.stdout] == []
    assert "hunter2hunter2" not in out.stdout
