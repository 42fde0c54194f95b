"""The pure parts of teams: what a role may do at the edge, a principal in call metadata, the settings the policies read,
and the page's session cookies with their subject."""

from __future__ import annotations

import json

import pytest

from services.gateway.edge import Sessions, audited, permission
from services.gateway.principals import check_projects
from shared.errors import InvalidArgument
from shared.runtime import principal
from shared.runtime.principal import SYSTEM, Principal

READER = Principal("rita", "reader", ("alpha",), "k1")
WRITER = Principal("will", "writer", ("alpha", "beta"), "k2")


@pytest.mark.parametrize(("method", "path", "who", "refused"), [
    ("POST", "/api/v1/search", READER, None), ("POST", "/api/v1/chat", READER, None), ("POST", "/v1/chat/completions", READER, None),
    ("GET", "/api/v1/documents/x", READER, None), ("POST", "/api/v1/session", READER, None), ("POST", "/mcp/", READER, None),
    ("PATCH", "/api/v1/conversations/c", READER, None),
    ("POST", "/api/v1/notes", READER, "is a reader"), ("DELETE", "/api/v1/documents/x", READER, "is a reader"),
    ("PATCH", "/api/v1/uploads/u", READER, "is a reader"), ("POST", "/api/v1/notes", WRITER, None),
    ("GET", "/api/v1/admin/users", WRITER, "needs an admin key"), ("GET", "/api/v1/audit", READER, "needs an admin key"),
    ("GET", "/api/v1/admin/users", SYSTEM, None), ("POST", "/api/v1/admin/keys", Principal("ann", "admin", None), None),
])
def test_what_a_role_may_do_at_the_edge(method: str, path: str, who: Principal, refused: str | None) -> None:
    said = permission(method, path, who)
    assert (said is None) if refused is None else (said is not None and refused in said)


def test_what_the_audit_calls_a_request() -> None:
    assert audited("POST", "/api/v1/notes") == "write" and audited("DELETE", "/api/v1/documents/x") == "write"
    assert audited("GET", "/api/v1/documents/x") == "read" and audited("GET", "/api/v1/documents/x/view") == "read"
    assert audited("POST", "/api/v1/search") is None and audited("POST", "/mcp/") is None and audited("GET", "/api/v1/library") is None


def test_a_principal_survives_metadata_and_a_bad_one_is_refused() -> None:
    header = principal.to_metadata(WRITER)
    assert header is not None and header[0] == principal.HEADER
    assert principal.from_metadata(header[1].encode()) == WRITER
    assert principal.to_metadata(SYSTEM) is None  # no header is the system
    for bad in ("", "{", "[]", json.dumps({"n": "x"}), json.dumps({"n": "Bad Name", "r": "reader", "p": None}),
                json.dumps({"n": "x", "r": "superuser", "p": None}), json.dumps({"n": "x", "r": "reader", "p": "alpha"}),
                json.dumps({"n": "x", "r": "reader", "p": ["a,b"]}), json.dumps({"n": "x", "r": "reader", "p": [""]})):
        with pytest.raises(ValueError):
            principal.from_metadata(bad)


def test_the_settings_the_policies_read() -> None:
    assert principal.settings_for(SYSTEM) == ("", "*", "1")
    assert principal.settings_for(WRITER) == ("will", "alpha,beta", "")
    assert principal.settings_for(Principal("n", "reader", ())) == ("n", "!", "")  # no project, not even the default one
    assert principal.settings_for(Principal("a", "admin", None)) == ("a", "*", "1")
    assert SYSTEM.scope() == "*" and WRITER.scope() != READER.scope()  # result cache keys differ by scope


def test_key_scopes_are_project_names() -> None:
    assert check_projects(None) is None and check_projects(["b", "a", "b"]) == ["a", "b"]
    for bad in ([], ["a,b"], ["../x"], [""]):
        with pytest.raises(InvalidArgument):
            check_projects(bad)


def test_session_cookies_carry_their_subject_and_refuse_forgery() -> None:
    sessions = Sessions("k" * 32, 1.0)
    admin, person = sessions.issue(), sessions.issue(subject="0b6b0d4e-1c52-4bd3-9bd6-1d0f3c7e9b1a")
    assert sessions.subject(admin) == "" and sessions.valid(admin)
    assert sessions.subject(person) == "0b6b0d4e-1c52-4bd3-9bd6-1d0f3c7e9b1a"
    payload, _, mac = person.rpartition(".")
    forged = payload.rsplit(".", 1)[0] + "." + "" + "." + mac  # the subject dropped to become the admin
    assert sessions.subject(forged) is None
    assert sessions.subject(sessions.issue(now=1.0)) is None  # expired long ago
    assert Sessions("other" * 8, 1.0).subject(person) is None
