"""A resumable upload to the gateway (tus 1.0, /api/v1/uploads), as `tessera ingest --upload FILE` sends it.

The upload's URL is kept in ``$XDG_CACHE_HOME/tessera/uploads/`` (``~/.cache``), keyed by the gateway, the file's path,
size and modification time: run the command again after a broken connection, a killed process or a reboot, and it
asks the gateway where the upload stands (HEAD) and sends the rest from there. Each part carries its sha1
(``Upload-Checksum``); the gateway keeps no part that does not match.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from shared.errors import Unavailable
from shared.runtime import secrets
from shared.runtime.config import Settings

TUS = {"Tus-Resumable": "1.0.0"}
PREFIX = "/api/v1/uploads"


def state_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tessera" / "uploads"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _state_file(base: str, path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{base}\n{path}\n{st.st_size}\n{st.st_mtime_ns}".encode()).hexdigest()[:32]
    return state_dir() / f"{key}.json"


def _check(r: httpx.Response, *ok: int) -> httpx.Response:
    if r.status_code not in ok:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:300]
        raise Unavailable(f"upload: the gateway answered {r.status_code}: {message}")
    return r


def upload(settings: Settings, path: Path, project: str = "", part_bytes: int = 8 * 1024 * 1024,
           on_progress: Callable[[int, int, bool], None] | None = None) -> str:
    """Send ``path`` (resuming an earlier upload of the same file), return the ingest job the gateway started.
    ``on_progress(sent, total, resumed)`` after each part."""
    path = path.expanduser().resolve()
    size = path.stat().st_size
    base = f"http://127.0.0.1:{settings.gateway.port}"
    headers = {**TUS, "Authorization": f"Bearer {secrets.ensure(settings, secrets.ADMIN_KEY)}"}
    state = _state_file(base, path)
    with httpx.Client(base_url=base, headers=headers, timeout=httpx.Timeout(60, read=300)) as http:
        url, offset, resumed = "", 0, False
        if state.exists():
            url = json.loads(state.read_text()).get("url", "")
            head = http.head(url) if url else None
            if head is not None and head.status_code == 200:
                offset, resumed = int(head.headers["Upload-Offset"]), True
            else:
                url = ""
        if not url:
            meta = f"filename {_b64(path.name)}" + (f",project {_b64(project)}" if project else "")
            created = _check(http.post(PREFIX, headers={"Upload-Length": str(size), "Upload-Metadata": meta}), 201)
            url = created.headers["Location"]
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"url": url, "path": str(path)}))
        if on_progress is not None:
            on_progress(offset, size, resumed)
        job = ""
        with path.open("rb") as f:
            while offset < size or (size == 0 and not job):
                f.seek(offset)
                part = f.read(part_bytes)
                digest = base64.b64encode(hashlib.sha1(part).digest()).decode()  # tus's checksum of the part, not a security measure
                r = http.patch(url, content=part, headers={"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset),
                                                           "Upload-Checksum": f"sha1 {digest}"})
                if r.status_code == 409:  # it moved (another sender, or a part kept after all): ask where it is
                    offset = int(_check(http.head(url), 200).headers["Upload-Offset"])
                    continue
                _check(r, 204)
                offset = int(r.headers["Upload-Offset"])
                job = r.headers.get("Tessera-Job-Id", "")
                if on_progress is not None:
                    on_progress(offset, size, resumed)
                if size == 0:
                    break
    state.unlink(missing_ok=True)
    return job
