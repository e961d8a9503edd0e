"""A local fake of Airflow's REST API, checked against Airflow's own OpenAPI description.

The description is the one shipped inside the apache-airflow wheel of the test venvs
(tests/airflow_env.py): `api_fastapi/core_api/openapi/v2-rest-api-generated.yaml` (3.x, API v2)
and `api_connexion/openapi/v1.yaml` (2.x, API v1). Every request and every response is validated
with openapi-core; a mismatch is recorded in `violations` (tests assert there is none) and the
request gets a 422. Served: version, DagRuns of one DAG or of all (`~`) with paging, `state` and `run_type`
filters and `order_by` on a date, task instances of a run; `POST /auth/token` (Airflow 3's simple auth manager, not part
of the v2 description) exchanges a username and password for a token.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml
from github_fake import _OARequest, _OAResponse  # openapi-core's request/response protocols
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

HOST = "http://airflow.test"
SPECS = {
    "v2": "api_fastapi/core_api/openapi/v2-rest-api-generated.yaml",
    "v1": "api_connexion/openapi/v1.yaml",
}


def _package(python: str) -> Path:
    probe = "import importlib.util as u; print(list(u.find_spec('airflow').submodule_search_locations)[0])"
    return Path(
        subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    )


@functools.cache
def openapi(python: str, api: str) -> OpenAPI:
    spec = yaml.safe_load((_package(python) / SPECS[api]).read_text(encoding="utf-8"))
    spec["servers"] = [{"url": HOST if api == "v2" else f"{HOST}/api/v1"}]
    # Airflow declares OAuth2 password / HTTP bearer schemes openapi-core cannot check; auth is
    # checked by hand in the fake.
    spec.pop("security", None)
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return OpenAPI.from_dict(spec)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeAirflow:
    def __init__(
        self,
        python: str,
        api: str,
        runs: list[dict[str, Any]],
        instances: dict[str, list[dict[str, Any]]],
        *,
        user: str = "admin",
        password: str = "pw",
    ) -> None:
        self.python = python
        self.api = api
        self.runs = runs
        self.instances = instances  # run id → task instances
        self.user, self.password = user, password
        self.token = "fake-jwt-token"
        self.violations: list[str] = []
        self.requests: list[str] = []
        self._server: BaseWSGIServer | None = None

    def start(self) -> FakeAirflow:
        openapi(self.python, self.api)
        self._server = make_server("127.0.0.1", 0, self._app, request_handler=_Quiet, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _json(self, status: int, payload: Any) -> Response:
        return Response(json.dumps(payload), status=status, content_type="application/json")

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.token}":
            return True
        basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return self.api == "v1" and header == f"Basic {basic}"

    def _handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        self.requests.append(f"{method} {request.full_path.rstrip('?')}")
        if path == "/auth/token" and method == "POST" and self.api == "v2":
            body = json.loads(request.get_data() or b"{}")
            if body.get("username") == self.user and body.get("password") == self.password:
                return self._json(201, {"access_token": self.token})
            return self._json(401, {"detail": "Invalid credentials"})
        if not path.startswith(f"/api/{self.api}/"):  # another API version: a real server has no such route
            return self._json(404, {"detail": "Not Found"})
        oa_request = _OARequest(
            path=path,
            method=method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(request.args.items(multi=True))),
                header=Headers(request.headers),
                cookie=ImmutableMultiDict(),
            ),
            content_type=request.content_type or "application/json",
            body=request.get_data() or None,
            host_url=HOST,
        )
        spec = openapi(self.python, self.api)
        errors = [str(e) for e in spec.iter_request_errors(oa_request)]
        if errors:
            self.violations += [f"request {method} {path}: {e}" for e in errors]
            return self._json(422, {"detail": errors})
        if not path.endswith("/version") and not self._authorized(request):
            response = self._json(401, {"detail": "Not authenticated"})
        else:
            response = self._dispatch(request)
        oa_response = _OAResponse(
            response.status_code, response.content_type or "", response.headers, response.get_data()
        )
        for problem in spec.iter_response_errors(oa_request, oa_response):
            details = getattr(problem, "__cause__", None)
            self.violations.append(
                f"response {response.status_code} to {method} {path}: {problem} {details or ''}"
            )
        return response

    def _dispatch(self, request: Request) -> Response:
        prefix = f"/api/{self.api}"
        path = request.path.removeprefix(prefix)
        limit = int(request.args.get("limit", 100))
        offset = int(request.args.get("offset", 0))
        if path == "/version":
            return self._json(
                200, {"version": "3.3.2" if self.api == "v2" else "2.11.2", "git_version": None}
            )
        m = re.fullmatch(r"/dags/([^/]+)/dagRuns", path)
        if m:
            states = request.args.getlist("state")
            runs = [
                r
                for r in self.runs
                if (m.group(1) == "~" or r["dag_id"] == m.group(1)) and (not states or r["state"] in states)
            ]
            kinds = request.args.getlist("run_type")
            runs = [r for r in runs if not kinds or r.get("run_type") in kinds]
            order = request.args.get("order_by") or ""
            key = order.lstrip("-")
            if key in ("start_date", "logical_date", "execution_date"):
                runs.sort(key=lambda r: r.get(key) or "", reverse=order.startswith("-"))
            return self._json(200, {"dag_runs": runs[offset : offset + limit], "total_entries": len(runs)})
        m = re.fullmatch(r"/dags/([^/]+)/dagRuns/([^/]+)/taskInstances", path)
        if m:
            tis = self.instances.get(m.group(2), [])
            return self._json(
                200, {"task_instances": tis[offset : offset + limit], "total_entries": len(tis)}
            )
        return self._json(404, {"detail": "Not Found"})
