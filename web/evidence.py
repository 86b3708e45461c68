"""Files on a case: photos, short videos and PDFs from the customer and staff.

Every upload, from every door, goes one way: the bytes are checked and made safe
(aftersales/attachments.py: the type from the bytes, images re-encoded without their
metadata, thumbnails), stored in the blob store under their SHA-256, and only then
recorded on the case by the workflow's `attach` update, which keeps metadata only.
A refused file changes nothing; a stored blob no case came to reference is swept.

Downloads: staff with the case's permission (API token, or the desk's session), and
the holder of the case's status link for the files they sent and the ones staff
shared.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request, session, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from aftersales.attachments import FileRefused, Limits, Prepared, prepare
from aftersales.blobs import BlobMissing
from db import cases as case_store
from db.models import Case
from web.auth import check, current_user, require
from web.caseview import case_state
from web.commands import action_input, check_access, customer_action, perform_action
from web.gateway import ActionRefused
from web.intake import ID_ALPHABET
from web.problems import Problem
from web.representation import (
    attachment_json,
    customer_attachments,
    staff_attachments,
    visible_to_customer,
)
from web.status import lookup_link
from workflows.case.contracts import Actor
from workflows.case.lifecycle import BY_NAME, CUSTOMER, refusal
from workflows.case.vocabulary import RESERVED_NAMES

evidence = Blueprint("evidence", __name__)
# Multipart overhead on top of the largest file a request may carry.
FORM_OVERHEAD = 64 * 1024


def state():
    return current_app.extensions["aftersales"]


def new_attachment_id() -> str:
    return "F-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(10))


def limits() -> Limits:
    return Limits.from_settings(state().settings)


# The endpoints that take files, and how many one request may carry (None: the request
# page's REQUEST_FILES). Every other request keeps the app's own limit.
REQUEST_FILES = 6
UPLOADS: dict[str, int | None] = {
    "evidence.staff_upload": 1, "evidence.customer_upload": 1, "desk.upload": 1,
    "customer.upload": 1, "selfservice.send_request": None}


def upload_limit() -> int | None:
    """How large this request's body may be if it is an upload (web/body_limit.py),
    else None: its files of the largest size allowed and the multipart around them,
    and only a form's worth when nobody the body could be for sends it."""
    if request.endpoint not in UPLOADS:
        return None
    if not _may_upload():
        return FORM_OVERHEAD
    settings = state().settings
    files = UPLOADS[request.endpoint] or REQUEST_FILES
    return files * max(settings.max_image, settings.max_video) + FORM_OVERHEAD


def _may_upload() -> bool:
    """Whether this request comes from someone who may send files here: a signed-in
    user on the desk, a known status link, an order proven in this browser. (The API
    checks its bearer token before it reads the body.)"""
    endpoint, args = request.endpoint, request.view_args or {}
    if endpoint == "desk.upload":
        return session.get("user") is not None
    if endpoint == "customer.upload":
        with state().sessions() as db:
            return case_store.get_case_by_token(db, args.get("token", "")) is not None
    if endpoint == "selfservice.send_request":
        return bool(session.get("request_proof"))
    return True


def read_files(field: str, most: int) -> list[tuple[bytes, str]]:
    """The uploaded files of `field` as (bytes, name); 413 beyond the request's limit,
    422 when there is none, 409 beyond `most`."""
    try:
        uploads: list[FileStorage] = [f for f in request.files.getlist(field) if f.filename]
    except RequestEntityTooLarge as err:
        raise too_large() from err
    if len(uploads) > most:
        raise Problem(409, "Too many files", f"at most {most} more file(s) fit on this case",
                      errors={field: [f"at most {most} file(s)"]})
    cap = max(state().settings.max_image, state().settings.max_video) + 1
    return [(f.stream.read(cap), f.filename or "") for f in uploads]


def too_large() -> Problem:
    settings = state().settings
    return Problem(413, "Too large",
                   f"a file may be at most {settings.max_image // 2**20} MB (images and PDFs) "
                   f"or {settings.max_video // 2**20} MB (videos)",
                   errors={"file": ["too large"]})


def check_file(data: bytes, filename: str) -> Prepared:
    """The file made safe, or the problem saying why it is refused (nothing stored)."""
    try:
        return prepare(data, filename, limits())
    except FileRefused as err:
        raise Problem(err.status, err.title, err.detail,
                      errors={"file": [err.detail]}) from err


def refusal_words(err: Problem) -> str:
    """A refused file in the page's language (the API's English detail is for
    integrators): the one wording every page uses."""
    settings = state().settings
    return {
        413: _("A file is too large. Photos and PDFs may be up to %(image)s MB, videos "
               "up to %(video)s MB.", image=settings.max_image // 2**20,
               video=settings.max_video // 2**20),
        415: _("A file is not a photo (JPEG, PNG, WebP, HEIC), an MP4 video or a PDF."),
        409: _("Too many files: a case has at most %(n)s, and a request at most "
               "%(m)s.", n=settings.max_files, m=REQUEST_FILES),
    }.get(err.status, _("A file is damaged or its name is not allowed."))


def room_left(row: Case) -> int:
    return max(state().settings.max_files - len(row.data.get("attachments") or []), 0)


def precheck(row: Case, actor: Actor | None) -> None:
    """Refuse before anything is stored what would be refused anyway: a staff caller
    whose role or standing to the case may not add files (the check every staff action
    makes), a stage that takes no files, and a case that has as many as it may."""
    if actor is not None:
        check_access(row.id, BY_NAME["attach"])
    refused = refusal(BY_NAME["attach"], case_state(row), actor or Actor(CUSTOMER, CUSTOMER),
                      datetime.now(UTC))
    if refused is not None:
        raise ActionRefused.of(refused)
    if room_left(row) == 0:
        raise Problem(409, "Too many files",
                      f"a case has at most {state().settings.max_files} files",
                      errors={"file": ["too many files"]})


def attach(case_id: str, prepared: Prepared, actor: Actor | None, shared: bool,
           row: Case | None = None) -> dict:
    """Store the bytes (and the thumbnail), then record the file on the case: the
    workflow refuses it beyond the limit of files or in a stage that takes none. The
    attachment's metadata as the workflow recorded it. The same bytes sent again to the
    case `row` by the same sender (a retried upload) are the file already there."""
    st = state()
    by = actor.name if actor else CUSTOMER
    if row is not None:
        for item in row.data.get("attachments") or []:
            if item["sha256"] == prepared.sha256 and item.get("by") == by:
                return item
    sha = st.blobs.put(prepared.data, prepared.content_type)
    thumb = (st.blobs.put(prepared.thumbnail, prepared.thumbnail_type or "image/jpeg")
             if prepared.thumbnail else None)
    attachment = {
        "id": new_attachment_id(), "filename": prepared.filename,
        "content_type": prepared.content_type, "size": prepared.size, "sha256": sha,
        "shared": shared, "thumbnail_sha256": thumb,
        "width": prepared.width, "height": prepared.height,
    }
    body = {"attachment": attachment, "max_files": st.settings.max_files}
    if actor is None:
        customer_action(case_id, "attach", body)
    elif actor.name in RESERVED_NAMES:  # Aftersales itself (inbound mail), no user
        action = BY_NAME["attach"]
        st.gateway.act(case_id, action.update, action_input(action, actor, body))
    else:
        perform_action(case_id, "attach", body)
    return attachment


def send_file(item: dict, thumbnail: bool) -> Response:
    """The stored bytes, never sniffed by the browser, offered as a download unless
    they are a picture or a video shown inline."""
    sha = item.get("thumbnail_sha256") if thumbnail else item["sha256"]
    if not sha:
        raise Problem(404, "Not found", "this file has no thumbnail")
    try:
        data = state().blobs.get(sha)
    except BlobMissing as err:
        raise Problem(404, "Not found", "the file is no longer stored") from err
    content_type = "image/jpeg" if thumbnail else item["content_type"]
    inline = content_type.startswith(("image/", "video/"))
    name = item["filename"]
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = (f'{"inline" if inline else "attachment"}; filename="{ascii_name}"; '
                   f"filename*=UTF-8''{quote(name)}")
    return Response(data, content_type=content_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",
        # A file is never a page: nothing in it may run or load anything.
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; "
                                   "sandbox"})


def find(row: Case, attachment_id: str) -> dict:
    for item in row.data.get("attachments") or []:
        if item["id"] == attachment_id:
            return item
    raise Problem(404, "Not found", f"no file {attachment_id} on case {row.id}")


def _case(case_id: str) -> Case:
    with state().sessions() as session:
        row = case_store.get_case(session, case_id)
        if row is None:
            raise Problem(404, "Not found", f"no case {case_id}")
        session.expunge(row)
    return row


def _uploaded_by_staff(case_id: str) -> dict:
    check("cases.attach")
    row = _case(case_id)
    user = current_user()
    precheck(row, Actor(user.name, user.role))
    files = read_files("file", room_left(row))
    if not files:
        raise Problem(422, "Invalid request", "send one file in the field 'file'",
                      errors={"file": ["missing"]})
    prepared = check_file(*files[0])
    shared = (request.form.get("shared") or "").lower() in ("true", "1", "on")
    item = attach(case_id, prepared, Actor(user.name, user.role), shared, row)
    return attachment_json({**item, "by": user.name},
                           f"/api/v1/cases/{case_id}/attachments")


# ---------------------------------------------------------------- staff, API


@evidence.post("/api/v1/cases/<case_id>/attachments")
def staff_upload(case_id: str):
    return _uploaded_by_staff(case_id), 201


@evidence.get("/api/v1/cases/<case_id>/attachments")
@require("cases.read")
def staff_list(case_id: str):
    return {"items": staff_attachments(_case(case_id))}


@evidence.get("/api/v1/cases/<case_id>/attachments/<attachment_id>")
@require("cases.read")
def staff_download(case_id: str, attachment_id: str):
    return send_file(find(_case(case_id), attachment_id), request.args.get("size") == "thumb")


# ---------------------------------------------------------------- the customer


def _linked_case(token: str) -> Case:
    row, _why, _events = lookup_link(token)
    if row is None:
        raise Problem(404, "Not found", "this link is unknown or has expired")
    return row


@evidence.post("/api/v1/status/<token>/attachments")
def customer_upload(token: str):
    row = _linked_case(token)  # before the body is read: an unknown link reads nothing
    precheck(row, None)
    files = read_files("file", room_left(row))
    if not files:
        raise Problem(422, "Invalid request", "send one file in the field 'file'",
                      errors={"file": ["missing"]})
    item = attach(row.id, check_file(*files[0]), None, True, row)
    return attachment_json({**item, "by": "customer"},
                           f"/api/v1/status/{token}/attachments"), 201


@evidence.get("/api/v1/status/<token>/attachments")
def customer_list(token: str):
    return {"items": customer_attachments(_linked_case(token), token)}


@evidence.get("/api/v1/status/<token>/attachments/<attachment_id>")
def customer_download(token: str, attachment_id: str):
    row = _linked_case(token)
    item = find(row, attachment_id)
    if not visible_to_customer(item):
        raise Problem(404, "Not found", f"no file {attachment_id} on this case")
    return send_file(item, request.args.get("size") == "thumb")


def desk_file_url(case_id: str, item: dict, thumbnail: bool = False) -> str:
    """Where the desk's pages fetch a file (signed-in session, not a token)."""
    return url_for("desk.attachment", case_id=case_id, attachment_id=item["id"],
                   size="thumb" if thumbnail else None)
