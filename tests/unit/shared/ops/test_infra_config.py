from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.ops.infra import Nats, Postgres, Valkey, embedded_servers
from shared.runtime.config import load_settings


def test_embedded_servers_follow_the_urls(tmp_path: Path) -> None:
    s = load_settings({"TESSERA_DATA_DIR": str(tmp_path), "TESSERA_DATABASE_URL": "postgresql://kb@127.0.0.1:6001/notes",
                       "TESSERA_NATS_URL": "nats://localhost:6002", "TESSERA_REDIS_URL": "redis://127.0.0.1:6003/0"})
    pg, nats, redis = embedded_servers(s)
    assert isinstance(pg, Postgres) and (pg.port, pg.user, pg.database) == (6001, "kb", "notes")
    assert isinstance(nats, Nats) and nats.port == 6002
    assert isinstance(redis, Valkey) and redis.port == 6003
    assert pg.root == tmp_path.resolve() / "infra" / "postgres"


def test_external_servers_are_left_alone(tmp_path: Path) -> None:
    s = load_settings({"TESSERA_DATA_DIR": str(tmp_path), "TESSERA_EMBEDDED": "redis",
                       "TESSERA_DATABASE_URL": "postgresql://kb@db.internal/notes", "TESSERA_NATS_URL": "nats://nats.internal:4222"})
    assert [srv.name for srv in embedded_servers(s)] == ["redis"]


def test_an_embedded_server_cannot_listen_on_a_remote_host(tmp_path: Path) -> None:
    s = load_settings({"TESSERA_DATA_DIR": str(tmp_path), "TESSERA_NATS_URL": "nats://nats.internal:4222"})
    with pytest.raises(ConfigError) as err:
        embedded_servers(s)
    assert err.value.setting == "TESSERA_NATS_URL" and "TESSERA_EMBEDDED" in str(err.value)
