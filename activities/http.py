"""What the clients of the retailer's systems share: one pooled HTTP client with
timeouts, and the line between infrastructure errors (retried) and business refusals
(non-retryable `ApplicationError`s the workflow handles)."""

from __future__ import annotations

import httpx
from temporalio.exceptions import ApplicationError

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class SystemClient:
    """Base of the order, inventory and courier clients; one per worker process."""

    system = "system"

    def __init__(self, base_url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, json: dict | None = None,
                   idempotency_key: str | None = None) -> httpx.Response:
        """Send one request. Timeouts, connection errors and 5xx raise (and so retry);
        4xx answers come back for the caller to turn into refusals."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._http.request(method, path, json=json, headers=headers)
        if response.status_code >= 500 or response.status_code == 429:
            raise RuntimeError(f"{self.system} answered {response.status_code} to "
                               f"{method} {path}")
        return response

    def refuse(self, response: httpx.Response, error_type: str) -> ApplicationError:
        """A business refusal the workflow handles; never retried."""
        return ApplicationError(
            f"{self.system} refused ({response.status_code}): {problem_detail(response)}",
            {"status": response.status_code, "problem_type": problem_type(response)},
            type=error_type, non_retryable=True)

    def expect(self, response: httpx.Response, *ok: int) -> dict:
        """The JSON body of an expected answer; any other 4xx is a refusal."""
        if response.status_code not in ok:
            raise self.refuse(response, f"{self.system.title().replace(' ', '')}Refused")
        return response.json()


def problem_detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.text)
    except ValueError:
        return response.text


def problem_type(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type") or "")
    except ValueError:
        return ""
