"""The REST calls the backend makes to Label Studio: tasks, predictions, and the task fields it fills.

A personal access token is exchanged for short-lived access tokens (``TokenProvider``), a legacy
token is sent as it is; every failure is one line naming the call and the HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests

from .media_fetch import LabelStudioAccess, TokenProvider

PAGE_SIZE = 100
TIMEOUT_S = 60.0


class LabelStudioApiError(RuntimeError):
    """Label Studio refused or failed an API call; ``status`` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def passing(self) -> bool:
        """Whether trying again later can help: no answer, overload or a server error (not a 4xx)."""
        return self.status is None or self.status == 429 or self.status >= 500


class LabelStudioApi:
    """Label Studio's REST API, with a personal access token or a legacy token."""

    def __init__(self, access: LabelStudioAccess):
        if not access.url:
            raise ValueError("the Label Studio URL is needed (--url or LABEL_STUDIO_URL)")
        self.url = access.url
        self.tokens = TokenProvider(access)

    def _call(self, method: str, path: str, **kwargs):
        url = f"{self.url}{path}"
        try:
            response = requests.request(method, url, headers=self.tokens.headers(), timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioApiError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if not response.ok:
            hint = " (check the API key)" if response.status_code in (401, 403) else ""
            raise LabelStudioApiError(f"{method} {url}: HTTP {response.status_code} {response.reason}{hint}",
                                      status=response.status_code)
        return response.json() if response.content else None

    def project(self, project_id: int) -> dict:
        return self._call("GET", f"/api/projects/{project_id}")

    def tasks(self, project_id: int) -> Iterator[dict]:
        page = 1
        while True:
            try:
                body = self._call("GET", "/api/tasks", params={"project": project_id, "page": page,
                                                               "page_size": PAGE_SIZE, "fields": "all"})
            except LabelStudioApiError as exc:
                if "HTTP 404" in str(exc) and page > 1:  # past the last page
                    return
                raise
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            yield from tasks
            total = body.get("total") if isinstance(body, dict) else None
            if not tasks or (total is not None and page * PAGE_SIZE >= total):
                return
            page += 1

    def prediction_versions(self, task_id: int) -> set[str]:
        return {p.get("model_version") for p in self.predictions(task_id)}

    def predictions(self, task_id: int) -> list[dict]:
        return self._call("GET", "/api/predictions", params={"task": task_id}) or []

    def prediction(self, prediction_id: int) -> dict:
        return self._call("GET", f"/api/predictions/{prediction_id}")

    def annotations(self, task_id: int) -> list[dict]:
        return self._call("GET", f"/api/tasks/{task_id}/annotations/") or []

    def post_prediction(self, task_id: int, prediction: dict) -> None:
        self._call("POST", "/api/predictions", json={"task": task_id, **prediction})

    def task(self, task_id: int) -> dict:
        return self._call("GET", f"/api/tasks/{task_id}")

    def update_task_data(self, task_id: int, data: dict) -> None:
        """Replaces the task's data (Label Studio's PATCH stores ``data`` whole): pass all of it."""
        self._call("PATCH", f"/api/tasks/{task_id}", json={"data": data})
