"""`xrg serve --ckpt X`: a local web page for one trained model.

Upload a study (one or more images, or DICOM files), read the report, the findings with their
probabilities and a heatmap per finding, and, for an LLM report model, ask follow-ups.

Why a small page on the standard library (`http.server`) and not gradio: the page needs four
requests (the page, a report, a follow-up, nothing else), gradio would add some hundred MB of
dependencies (fastapi, uvicorn, pandas, its own frontend) with a fast-moving API to every
install, and the browser test drives plain HTML as easily as gradio's. The model logic is not
here: reports, probabilities and heatmaps come from `xrg.inference.report_studies` (what
`xrg.load(ckpt).report(...)` and `xrg predict --images` use), follow-ups from `xrg.chat.Session`.

Safety for a local tool: bound to 127.0.0.1 unless `--host` says otherwise; uploads are capped
in bytes and images; one model call runs at a time (a lock; others wait, then get 503).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import secrets
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from xrg.data.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Limits:
    max_upload_bytes: int = 32 * 2**20  # one request's body; base64 adds a third on top of the files
    max_images: int = 4
    max_question_chars: int = 1000
    busy_timeout_s: float = 120.0  # how long a request waits for the model before a 503
    preview_px: int = 384  # the longer side of the pictures sent to the page
    sessions: int = 8  # studies kept for follow-ups; the oldest is forgotten first


class Refused(Exception):
    """A request the page gets a one-line reason for (status, message)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _png_data_url(image, longest: int) -> str:
    image = image.copy()
    image.thumbnail((longest, longest))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _safe_name(index: int, name: str) -> str:
    """A file name for an upload that keeps its extension (the readers look at it) and nothing else."""
    suffix = Path(name).suffix.lower()
    return f"view{index}" + (suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else "")


class ModelService:
    """One loaded model behind a lock: reports for uploaded studies, then follow-ups about them."""

    def __init__(self, model, limits: Limits | None = None, name: str = "model") -> None:
        from xrg.chat import Session
        from xrg.explain import finding_heads

        self.model = model.eval()
        self.limits = limits or Limits()
        self.name = name
        self.chat = Session.supports(model)
        # Every finding's heatmap, so the page shows any the user clicks without another call
        # (one backward pass through the image encoder per finding).
        encoder = getattr(model, "image_encoder", None)
        self.heatmaps = bool(finding_heads(model)) and encoder is not None and encoder.cam_layer() is not None
        self._lock = threading.Lock()
        self._studies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._uploads = tempfile.TemporaryDirectory(prefix="xrg-serve-")  # removed by close()

    def info(self) -> dict[str, Any]:
        return {"model": self.name, "task": type(self.model).__name__, "chat": self.chat, "heatmaps": self.heatmaps,
                "max_images": self.limits.max_images, "max_upload_bytes": self.limits.max_upload_bytes}

    def _acquire(self) -> None:
        if not self._lock.acquire(timeout=self.limits.busy_timeout_s):
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "the model is busy with another request; try again")

    def report(self, images: list[dict[str, str]]) -> dict[str, Any]:
        """`images`: [{name, data: base64}] -> the page's view of the study."""
        from xrg.inference import report_studies

        if not images:
            raise Refused(HTTPStatus.BAD_REQUEST, "upload at least one image")
        if len(images) > self.limits.max_images:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(images)} images; this server takes at most {self.limits.max_images} per study")
        folder = Path(tempfile.mkdtemp(dir=self._uploads.name))
        paths = []
        for index, image in enumerate(images):
            try:
                data = base64.b64decode(str(image.get("data", "")).split(",")[-1], validate=True)
            except (binascii.Error, ValueError):
                raise Refused(HTTPStatus.BAD_REQUEST, f"image {index + 1} ({image.get('name')!r}) is not base64 data") from None
            paths.append(folder / _safe_name(index, str(image.get("name", ""))))
            paths[-1].write_bytes(data)
        self._acquire()
        try:
            (study,) = report_studies(self.model, [("study", paths)], explain="all" if self.heatmaps else False)
            study_id = secrets.token_urlsafe(8)
            self._remember(study_id, {"folder": folder, "paths": paths, "report": study.report, "session": None})
        except DataError as err:
            shutil.rmtree(folder, ignore_errors=True)
            # The reader names the temporary file; the page names the upload.
            message = str(err)
            for path, image in zip(paths, images):
                message = message.replace(str(path), repr(image.get("name")))
            raise Refused(HTTPStatus.BAD_REQUEST, message) from None
        finally:
            self._lock.release()
        px = self.limits.preview_px
        ranked = sorted(study.findings.items(), key=lambda item: -item[1])
        return {
            "study": study_id,
            "report": study.report,
            "findings": [{"name": name, "probability": p, "present": name in study.present} for name, p in ranked],
            "views": [_png_data_url(view, px) for view in study.views],
            "heatmaps": {name: [_png_data_url(study.overlay(name, v), px) for v in range(len(study.views))]
                         for name in study.heatmaps},
            "details": study.details,
            "chat": self.chat,
        }

    def ask(self, study_id: str, question: str) -> str:
        """An answer about an uploaded study, with the conversation so far as context."""
        from xrg.chat import Session
        from xrg.inference import preparation_of

        if not self.chat:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{type(self.model).__name__} cannot chat (it needs an LLM decoder and a prompt)")
        question = question.strip()
        if not question or len(question) > self.limits.max_question_chars:
            raise Refused(HTTPStatus.BAD_REQUEST, f"a question needs 1 to {self.limits.max_question_chars} characters")
        study = self._studies.get(study_id)
        if study is None:
            raise Refused(HTTPStatus.NOT_FOUND, "that study is no longer here; upload it again")
        self._acquire()
        try:
            if study["session"] is None:
                session = Session(self.model, preparation_of(self.model).views(study["paths"], "study"))
                session.continue_from(study["report"])
                study["session"] = session
            return study["session"].ask(question)
        finally:
            self._lock.release()

    def _remember(self, study_id: str, study: dict[str, Any]) -> None:
        """Keep a study for follow-ups (called under the lock), forgetting the oldest beyond the limit."""
        self._studies[study_id] = study
        while len(self._studies) > self.limits.sessions:
            _, old = self._studies.popitem(last=False)
            shutil.rmtree(old["folder"], ignore_errors=True)

    def close(self) -> None:
        """Forget every study and remove the uploads."""
        self._studies.clear()
        self._uploads.cleanup()


def _handler(service: ModelService) -> type[BaseHTTPRequestHandler]:
    page = resources.files("xrg").joinpath("serve.html").read_text(encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        server_version = "xrg-serve"

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            elif self.path == "/api/info":
                self._json(HTTPStatus.OK, service.info())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def _body(self) -> dict[str, Any]:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise Refused(HTTPStatus.LENGTH_REQUIRED, "a request needs a Content-Length")
            if int(length) > service.limits.max_upload_bytes:
                self._discard(int(length))
                raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"upload of {int(length) / 2**20:.1f} MB; this server takes at most {service.limits.max_upload_bytes / 2**20:.0f} MB")
            try:
                body = json.loads(self.rfile.read(int(length)))
            except ValueError:
                raise Refused(HTTPStatus.BAD_REQUEST, "the request body is not JSON") from None
            if not isinstance(body, dict):
                raise Refused(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
            return body

        def _discard(self, length: int) -> None:
            """Read and drop a refused body (up to a bound), so the client, still sending, reads
            the refusal instead of a broken pipe; a larger one is cut off by closing."""
            left = min(length, 4 * service.limits.max_upload_bytes)
            while left > 0 and (chunk := self.rfile.read(min(left, 2**20))):
                left -= len(chunk)

        def do_POST(self) -> None:
            try:
                if self.path == "/api/report":
                    payload = service.report(list(self._body().get("images") or []))
                elif self.path == "/api/ask":
                    body = self._body()
                    payload = {"answer": service.ask(str(body.get("study", "")), str(body.get("question", "")))}
                else:
                    raise Refused(HTTPStatus.NOT_FOUND, f"no endpoint {self.path}")
            except Refused as refused:
                self.close_connection = True  # a refused body may be partly unread
                self._json(refused.status, {"error": str(refused)})
                return
            except Exception as err:  # the page shows one line; the console keeps the traceback
                log.exception("request %s failed", self.path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})
                return
            self._json(HTTPStatus.OK, payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def make_server(service: ModelService, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving: call `serve_forever`); `port=0` picks a free port."""
    server = ThreadingHTTPServer((host, port), _handler(service))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    from xrg.cli import CommandParser

    parser = CommandParser(prog="xrg serve", description="A local web page for a trained model: upload a study, "
                                     "read its report, findings, heatmaps, and ask follow-ups (LLM models).")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `xrg fit`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--max-upload-mb", type=float, default=32, help="largest request body, in MB")
    parser.add_argument("--max-images", type=int, default=4, help="most images in one study")
    args = parser.parse_args(argv)

    import xrg

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_images=args.max_images)
    service = ModelService(xrg.load(args.ckpt), limits, name=Path(args.ckpt).name)
    server = make_server(service, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"xrg serve: {type(service.model).__name__} from {args.ckpt} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
