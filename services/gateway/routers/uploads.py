"""Resumable uploads over HTTP: the tus 1.0 protocol (https://tus.io/protocols/resumable-upload) at /api/v1/uploads.

``POST`` with ``Upload-Length`` and ``Upload-Metadata`` (``filename``, ``project``) makes an upload (201, its URL in
``Location``); ``PATCH`` with ``Upload-Offset`` and ``Content-Type: application/offset+octet-stream`` appends (204, the
new ``Upload-Offset``; ``Upload-Checksum: sha1 <base64>`` is checked, 460 when it does not match); ``HEAD`` says where
it is; ``DELETE`` drops it. Once complete the file is ingested like a folder import (under ingest's roots, its limits,
dedup and enrichment), and the last PATCH answers with ``Tessera-Job-Id``. The PATCH body is not held to the gateway's
body limit (it streams to disk); the upload's own length is its limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from services.gateway import convert
from services.gateway.deps import AUTH, Gateway, gateway, in_scope
from services.gateway.schemas import ErrorOut
from services.gateway.uploads import CHECKSUMS, ChecksumMismatch, TooLarge, Upload, Uploads, parse_metadata
from shared.errors import InvalidArgument, StatusError

router = APIRouter(tags=["uploads"], dependencies=AUTH)
#: tus's own refusals, beside the API's.
TUS_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (412, "Tus-Resumable: 1.0.0 is missing: the client does not speak this tus version."),
        (415, "A PATCH needs Content-Type: application/offset+octet-stream."),
        (460, "The bytes do not match Upload-Checksum; nothing of the request was kept."))}

TUS_VERSION = "1.0.0"
PREFIX = "/api/v1/uploads"
TUS = {"Tus-Resumable": TUS_VERSION}


def uploads(g: Gateway) -> Uploads:
    return Uploads(g.settings)


def _tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise _Refused(412, f"uploads: send Tus-Resumable: {TUS_VERSION} (this server speaks tus {TUS_VERSION})")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int_header(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 19:
        raise InvalidArgument(f"uploads: {name} must be a non-negative whole number of bytes, not {value[:40]!r}")
    return int(value)


def _state(upload: Upload) -> dict[str, str]:
    return {**TUS, "Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length), "Upload-Expires": upload.expires,
            "Cache-Control": "no-store"}


def _refused(exc: Exception) -> Response:
    """The API's error body (as every route's), with tus's version header."""
    if isinstance(exc, _Refused):
        status, message, code = exc.status, str(exc), ""
    else:
        assert isinstance(exc, StatusError)
        status, message, code = exc.http_status, exc.message, str(getattr(exc, "error_code", exc.code))
    return JSONResponse(convert.error_body(status, message, code), status_code=status, headers=TUS)


@router.options(PREFIX, include_in_schema=False)
async def capabilities(g: Gateway = Depends(gateway)) -> Response:
    return Response(status_code=204, headers={**TUS, "Tus-Version": TUS_VERSION, "Tus-Max-Size": str(g.settings.gateway.upload_max_bytes),
                                              "Tus-Extension": "creation,expiration,checksum,termination",
                                              "Tus-Checksum-Algorithm": ",".join(CHECKSUMS)})


@router.post(PREFIX, status_code=201, responses={201: {"description": "Created: the upload's URL in Location"}, **TUS_ERRORS})
async def create(request: Request, g: Gateway = Depends(gateway)) -> Response:
    """Start a resumable upload (tus creation): `Upload-Length` and `Upload-Metadata` (filename, project)."""
    try:
        _tus(request)
        length = _int_header(request, "upload-length")
        meta = parse_metadata(request.headers.get("upload-metadata", ""))
        in_scope(str(meta.get("project", "")), writes=True)
        upload = await asyncio.to_thread(uploads(g).create, length, meta)
    except TooLarge as exc:
        return _refused(_Refused(413, str(exc)))
    except (_Refused, StatusError) as exc:
        return _refused(exc)
    return Response(status_code=201, headers={**_state(upload), "Location": f"{PREFIX}/{upload.id}"})


@router.head(f"{PREFIX}/{{upload_id}}", include_in_schema=False)
async def offset(upload_id: str, request: Request, g: Gateway = Depends(gateway)) -> Response:
    try:
        _tus(request)
        upload = await asyncio.to_thread(uploads(g).get, upload_id)
    except (_Refused, StatusError) as exc:
        return _refused(exc)
    return Response(status_code=200, headers=_state(upload))


@router.patch(f"{PREFIX}/{{upload_id}}", status_code=204, responses={204: {"description": "Appended: the new Upload-Offset"},
                                                                     **TUS_ERRORS})
async def append(upload_id: str, request: Request, g: Gateway = Depends(gateway)) -> Response:
    """Append bytes at `Upload-Offset` (tus core), with an optional `Upload-Checksum`; the last one ingests the file."""
    store = uploads(g)
    try:
        _tus(request)
        if request.headers.get("content-type") != "application/offset+octet-stream":
            raise _Refused(415, "uploads: a PATCH carries Content-Type: application/offset+octet-stream")
        at = _int_header(request, "upload-offset")
        checksum = None
        if header := request.headers.get("upload-checksum"):
            algorithm, _, value = header.partition(" ")
            if algorithm not in CHECKSUMS:
                raise InvalidArgument(f"uploads: checksum algorithm {algorithm[:20]!r}; one of {', '.join(CHECKSUMS)}")
            try:
                checksum = (algorithm, base64.b64decode(value, validate=True))
            except binascii.Error:
                raise InvalidArgument("uploads: Upload-Checksum's value is not base64") from None
        upload = await asyncio.to_thread(store.get, upload_id)
        upload.offset = await store.append(upload, at, request.stream(), checksum)
    except ChecksumMismatch:
        return _refused(_Refused(460, "uploads: the bytes do not match Upload-Checksum; nothing of this request was kept"))
    except ClientDisconnect:  # the connection broke: what arrived is kept, and the client asks (HEAD) where to go on
        return Response(status_code=400, headers=TUS)
    except (_Refused, StatusError) as exc:
        return _refused(exc)
    headers = _state(upload)
    if upload.offset == upload.length:
        path = await asyncio.to_thread(store.finish, upload)
        try:
            job = await g.mesh.client.ingest_path(path, project=upload.project)
        except StatusError as exc:
            return _refused(exc)
        headers["Tessera-Job-Id"] = job.job_id
    return Response(status_code=204, headers=headers)


@router.delete(f"{PREFIX}/{{upload_id}}", status_code=204, responses={204: {"description": "Deleted"}, **TUS_ERRORS})
async def terminate(upload_id: str, request: Request, g: Gateway = Depends(gateway)) -> Response:
    """Drop an unfinished upload (tus termination)."""
    try:
        _tus(request)
        await asyncio.to_thread(uploads(g).get, upload_id)
        await asyncio.to_thread(uploads(g).delete, upload_id)
    except (_Refused, StatusError) as exc:
        return _refused(exc)
    return Response(status_code=204, headers=TUS)
