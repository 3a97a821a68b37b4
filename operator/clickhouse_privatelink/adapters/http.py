"""An HTTP answer read whole, as the operator's aiohttp requests (ClickHouse API, Kubernetes API) hand it on."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole (its connection is free again)."""

    status: int
    reason: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    async def read(cls, response: aiohttp.ClientResponse) -> Answer:
        return cls(response.status, response.reason or "", await response.read(), response.headers)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)  # ValueError (JSONDecodeError, UnicodeDecodeError) when it is not JSON
