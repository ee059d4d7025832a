"""A real Label Studio 1.23.2 server for end-to-end tests, and a small API client for it.

Label Studio lives in its own virtual environment (it pins its own label-studio-sdk, Django and
numpy), installed by ``scripts/install_label_studio.sh`` at ``$LS_VENV`` (default
``~/.cache/empathic/label-studio-1.23.2``). ``scripts/test.sh`` installs it and exports ``LS_VENV``.

Typical use in a test module::

    from labelstudio_harness import start_label_studio

    @pytest.fixture(scope="module")
    def label_studio(tmp_path_factory):
        with start_label_studio(tmp_path_factory) as server:
            yield server

    def test_something(label_studio):
        api = label_studio.client()
        pid = api.create_project("p", "<View>...</View>")

Every server gets a fresh data dir (SQLite, uploads), an admin user with a legacy API token, a
Local Files document root (``server.media_root``) and the settings a loopback ML backend needs
(``ML_BLOCK_LOCAL_IP=false``, ``SSRF_PROTECTION_ENABLED=false``). Strict server-side prediction
validation is on, so an invalid prediction is a 400 instead of being stored.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import requests

LS_VERSION = "1.23.2"
DEFAULT_LS_VENV = Path.home() / ".cache" / "empathic" / f"label-studio-{LS_VERSION}"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin12345"
# Flag that makes LS validate every prediction against the label config (off by default in 1.23).
PREDICTION_VALIDATION_FLAG = "fflag_feat_utc_210_prediction_validation_15082025"

_INSTALL_HINT = (
    "Label Studio is not installed. Run scripts/install_label_studio.sh (it prints the venv path) "
    "and export LS_VENV=<that path>, or run the suite through scripts/test.sh, which does both."
)


class LabelStudioError(AssertionError):
    """A Label Studio API call failed; carries the HTTP status and the response body."""

    def __init__(self, method: str, url: str, status: int, body: str):
        self.method, self.url, self.status, self.body = method, url, status, body
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")


def label_studio_binary(ls_venv: str | os.PathLike | None = None) -> Path:
    """``$LS_VENV/bin/label-studio``; raises FileNotFoundError with the install hint when missing."""
    venv = Path(ls_venv or os.environ.get("LS_VENV") or DEFAULT_LS_VENV).expanduser()
    binary = venv / "bin" / "label-studio"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"{binary} not found. {_INSTALL_HINT}")
    return binary


def installed_version(binary: Path) -> str | None:
    """The label-studio version installed next to ``binary`` (from its dist-info; no process)."""
    venv = binary.parent.parent
    found = sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info"))
    return found[-1].name[len("label_studio-") : -len(".dist-info")] if found else None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioServer:
    """A ``label-studio start`` process on 127.0.0.1 with a throw-away data dir.

    ``start()`` blocks until ``/health`` answers (or raises with the tail of the server log);
    ``stop()`` terminates the whole process group. Also a context manager.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        ls_venv: str | os.PathLike | None = None,
        port: int | None = None,
        token: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 180.0,
        db_template: bool = True,
    ):
        self.binary = label_studio_binary(ls_venv)
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "lsdata"
        self.media_root = self.workdir / "media"  # LOCAL_FILES_DOCUMENT_ROOT
        self.log_path = self.workdir / "label-studio.log"
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.email = ADMIN_EMAIL
        self.password = ADMIN_PASSWORD
        self.token = token or secrets.token_hex(20)  # the admin's legacy API token
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.db_template = db_template
        self.used_db_template = False
        self.template_build_seconds: float | None = None  # set when this start built the template
        self.startup_seconds: float | None = None  # process start -> /health UP
        self.process: subprocess.Popen | None = None
        self._log_file = None

    # -- lifecycle -------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # Keep the server hermetic: nothing from an outer LS/Django set-up or the test venv.
            if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))
            and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
        }
        env.update(
            PATH=f"{self.binary.parent}{os.pathsep}{env.get('PATH', '')}",
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=self.email,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            ML_BLOCK_LOCAL_IP="false",
            SSRF_PROTECTION_ENABLED="false",
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
            LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(self.media_root),
            ML_TIMEOUT_PREDICT="300",
            COLLECT_ANALYTICS="false",
            LATEST_VERSION_CHECK="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            PYTHONUNBUFFERED="1",
            **{PREDICTION_VALIDATION_FLAG: "true"},
        )
        env.update(self.extra_env)
        return env

    # A fresh SQLite database costs ~45-60 s of migrations on every start. The first start builds
    # a migrated, empty database once per installed version (`label-studio version` migrates and
    # exits, unlike `label-studio --version`); later starts copy it and skip straight to serving.

    def template_path(self) -> Path:
        version = installed_version(self.binary) or "unknown"
        return self.binary.parent.parent / f"empathic-db-template-{version}" / "label_studio.sqlite3"

    def _ensure_db_template(self) -> Path | None:
        template = self.template_path()
        try:
            template.parent.mkdir(parents=True, exist_ok=True)
            with open(template.parent / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions build it once
                if template.is_file():
                    return template
                t0 = time.monotonic()
                build = Path(str(template.parent) + f".tmp-{os.getpid()}")
                shutil.rmtree(build, ignore_errors=True)
                build.mkdir()
                env = self.environment()
                for key in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
                    env.pop(key)
                env["LABEL_STUDIO_BASE_DATA_DIR"] = str(build)
                log = self.workdir / "label-studio-migrate.log"
                with open(log, "wb") as out:
                    code = subprocess.run(
                        [str(self.binary), "version"], cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                        stdout=out, stderr=subprocess.STDOUT, timeout=600,
                    ).returncode  # fmt: skip
                db = build / "label_studio.sqlite3"
                if code != 0 or not db.is_file():
                    raise RuntimeError(f"`label-studio version` exited with {code}; see {log}")
                os.replace(db, template)
                shutil.rmtree(build, ignore_errors=True)
                self.template_build_seconds = time.monotonic() - t0
                return template
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            warnings.warn(f"no migrated Label Studio database template ({e}); starting with migrations")
            return None

    def start(self) -> "LabelStudioServer":
        if self.process is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.media_root.mkdir(parents=True, exist_ok=True)
        db = self.data_dir / "label_studio.sqlite3"
        if self.db_template and not db.exists():
            template = self._ensure_db_template()
            if template is not None:
                shutil.copyfile(template, db)
                self.used_db_template = True
        cmd = [
            str(self.binary), "start", "--no-browser",
            "--port", str(self.port), "--internal-host", "127.0.0.1",
            "--data-dir", str(self.data_dir),
            "--enable-legacy-api-token", "--log-level", "INFO",
        ]  # fmt: skip
        self._log_file = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.process = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() kills everything it spawned
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        try:
            self._wait_healthy(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_healthy(self, t0: float) -> None:
        deadline = t0 + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"label-studio exited with code {code} during start-up.\n{self.log_tail()}"
                )
            try:
                r = requests.get(f"{self.url}/health", timeout=2)
                if r.status_code == 200 and r.json().get("status") == "UP":
                    return
            except (requests.RequestException, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"label-studio did not answer {self.url}/health within {self.startup_timeout:.0f} s.\n"
                    f"{self.log_tail()}"
                )
            time.sleep(1.0)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            # Children left in the group (none expected) go too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "LabelStudioServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no log at {self.log_path}: {e})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def client(self, token: str | None = None) -> "LabelStudioClient":
        """An API client authenticated with the admin's legacy token (or the given legacy token)."""
        return LabelStudioClient(self.url, token or self.token)

    def ml_backend_env(self, pat: str) -> dict[str, str]:
        """What an ML backend process needs to download media from this server."""
        return {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": pat}


def start_label_studio(tmp_path_factory, **kwargs: Any) -> LabelStudioServer:
    """Start a fresh server in a new temp dir and return it (the caller stops it, or uses ``with``).

    Fails the test (never skips) when Label Studio is not installed.
    """
    import pytest

    try:
        binary = label_studio_binary(kwargs.pop("ls_venv", None))
    except FileNotFoundError as e:
        missing = str(e)
    else:
        return LabelStudioServer(
            tmp_path_factory.mktemp("label-studio"), ls_venv=binary.parent.parent, **kwargs
        ).start()
    pytest.fail(missing, pytrace=False)


class LabelStudioClient:
    """Thin wrapper over the Label Studio REST API, legacy-token auth (``Authorization: Token``).

    Every call raises LabelStudioError (an AssertionError) with status and body on a non-2xx answer.
    """

    def __init__(self, url: str, token: str, timeout: float = 330.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout  # > ML_TIMEOUT_PREDICT: retrieve_predictions waits on the backend
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    # -- plumbing --------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, expect: Iterable[int] | None = None, **kwargs
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else f"{self.url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout)
        r = self.session.request(method, url, **kwargs)
        ok = r.status_code in expect if expect is not None else 200 <= r.status_code < 300
        if not ok:
            raise LabelStudioError(method, url, r.status_code, r.text)
        return r

    def get(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, json: Any = None, **kwargs) -> Any:
        r = self.request("POST", path, json=json, **kwargs)
        return r.json() if r.content else None

    def patch(self, path: str, json: Any = None, **kwargs) -> Any:
        r = self.request("PATCH", path, json=json, **kwargs)
        return r.json() if r.content else None

    def delete(self, path: str, **kwargs) -> None:
        self.request("DELETE", path, **kwargs)

    def download(self, url: str, *, bearer: str | None = None) -> bytes:
        """GET a media URL (e.g. a task's ``/data/upload/...``), with the legacy token or, when
        ``bearer`` is given, ``Authorization: Bearer <bearer>`` (an access token, not a PAT)."""
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        return self.request("GET", url, headers=headers).content

    # -- projects --------------------------------------------------------------------------------

    def create_project(self, title: str, label_config: str, **fields: Any) -> int:
        """Returns the project id. LS 1.23 rejects titles shorter than 3 characters (400)."""
        return self.post("/api/projects", {"title": title, "label_config": label_config, **fields})["id"]

    def get_project(self, project_id: int) -> dict:
        return self.get(f"/api/projects/{project_id}")

    def update_label_config(self, project_id: int, config: str) -> dict:
        return self.patch(f"/api/projects/{project_id}", {"label_config": config})

    def model_versions(self, project_id: int) -> dict:
        return self.get(f"/api/projects/{project_id}/model-versions")

    # -- tasks -----------------------------------------------------------------------------------

    def list_tasks(self, project_id: int) -> list[dict]:
        """All tasks of the project (with ``data``), oldest first."""
        tasks: list[dict] = []
        page = 1
        while True:
            body = self.get(
                "/api/tasks", params={"project": project_id, "page": page, "page_size": 100, "fields": "all"}
            )
            batch = body["tasks"] if isinstance(body, dict) else body
            tasks.extend(batch)
            total = body.get("total", len(tasks)) if isinstance(body, dict) else len(tasks)
            if not batch or len(tasks) >= total:
                break
            page += 1
        return sorted(tasks, key=lambda t: t["id"])

    def get_task(self, task_id: int) -> dict:
        """NB: opening a task without predictions makes LS ask a connected ML backend (auto-predict)."""
        return self.get(f"/api/tasks/{task_id}")

    def _import(self, project_id: int, **kwargs) -> list[int]:
        before = {t["id"] for t in self.list_tasks(project_id)}
        self.post(f"/api/projects/{project_id}/import", **kwargs)
        return sorted(t["id"] for t in self.list_tasks(project_id) if t["id"] not in before)

    def upload_file(self, project_id: int, path: str | os.PathLike) -> list[int]:
        """Multipart upload of a media file (one task, data ``/data/upload/<pid>/<hash>-<name>``)."""
        path = Path(path)
        with path.open("rb") as f:
            return self._import(project_id, files={"file": (path.name, f)})

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Import JSON tasks (``[{"data": {...}, "predictions": [...]?}, ...]``)."""
        return self._import(project_id, json=tasks)

    def create_local_storage(
        self, project_id: int, path: str | os.PathLike, *, regex: str = ".*", title: str = "media"
    ) -> int:
        """Local Files storage over ``path`` (a sub-dir of the server's media_root), synced: tasks
        get ``/data/local-files/?d=<path relative to media_root>``. Returns the storage id."""
        sid = self.post(
            "/api/storages/localfiles",
            {
                "project": project_id,
                "path": str(path),
                "use_blob_urls": True,
                "regex_filter": regex,
                "title": title,
            },
        )["id"]
        self.post(f"/api/storages/localfiles/{sid}/sync")
        return sid

    # -- tokens ----------------------------------------------------------------------------------

    def create_pat(self) -> str:
        """A new Personal Access Token (a refresh JWT)."""
        return self.post("/api/token/")["token"]

    def exchange_pat(self, pat: str) -> str:
        """PAT -> short-lived (5 min) access JWT, to be sent as ``Authorization: Bearer``."""
        r = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": pat}, timeout=30)
        if r.status_code != 200:
            raise LabelStudioError("POST", r.url, r.status_code, r.text)
        return r.json()["access"]

    # -- ML backends and predictions -------------------------------------------------------------

    def connect_ml_backend(self, project_id: int, url: str, title: str, **fields: Any) -> dict:
        """POST /api/ml: LS calls the backend's /health and /setup before answering."""
        body = {"project": project_id, "url": url, "title": title, "is_interactive": False, **fields}
        return self.post("/api/ml", body)

    def ml_backends(self, project_id: int) -> list[dict]:
        return self.get("/api/ml", params={"project": project_id})

    def _action(self, action: str, project_id: int, task_ids: Iterable[int] | None) -> Any:
        selected = (
            {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
        )
        return self.post(
            "/api/dm/actions", {"selectedItems": selected}, params={"id": action, "project": project_id}
        )

    def retrieve_predictions(self, project_id: int, task_ids: Iterable[int] | None = None) -> dict:
        """Data Manager "Retrieve predictions": LS calls the backend's /predict synchronously.
        Backend errors are swallowed by LS (check the predictions, not this answer)."""
        return self._action("retrieve_tasks_predictions", project_id, task_ids)

    def delete_predictions(self, project_id: int, task_ids: Iterable[int] | None = None) -> dict:
        return self._action("delete_tasks_predictions", project_id, task_ids)

    def predictions(self, task_id: int) -> list[dict]:
        return self.get("/api/predictions", params={"task": task_id})

    def create_prediction(
        self, task_id: int, result: list[dict], model_version: str, score: float | None = None
    ) -> dict:
        body: dict[str, Any] = {"task": task_id, "result": result, "model_version": model_version}
        if score is not None:
            body["score"] = score
        return self.post("/api/predictions", body)
