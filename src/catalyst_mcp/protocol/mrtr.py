"""Bridging server→client requests between eras.

* A legacy upstream asks for sampling, elicitation or roots in the middle of a call, but a modern
  client cannot receive requests: the call is parked here and the client gets an
  ``InputRequiredResult`` whose ``requestState`` names it; the client's retry carries the answers,
  which go to the waiting upstream, and the call resumes.
* A modern upstream returns ``InputRequiredResult`` to a legacy client, which cannot retry that
  way: the gateway asks the client each input request as a JSON-RPC request and retries the
  upstream call itself (:func:`satisfy_for_legacy`).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from catalyst_mcp.context import Asker, CallContext, same_caller
from catalyst_mcp.errors import CatalystError, InvalidParams, MissingCapability

__all__ = ["InputBridge", "satisfy_for_legacy"]

STATE_PREFIX = "catalyst-input:"
PARK_SECONDS = 300.0
MAX_ROUNDS = 16


@dataclass(eq=False)
class _Parked:
    ctx: CallContext
    task: asyncio.Task[dict[str, Any]] | None = None
    asks: dict[str, tuple[str, dict[str, Any], asyncio.Future[dict[str, Any]]]] = field(
        default_factory=dict
    )
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    expires: float = 0.0
    target: str | None = None  # the tool or prompt name, or resource URI, of the call
    keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    refusal: MissingCapability | None = None

    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        capability = method.split("/")[0]
        if not self.ctx.can(capability):
            # The client could never answer: fail its request, as a modern server would.
            self.refusal = MissingCapability(
                f"the upstream needs the client's {capability} capability, which the request "
                "did not declare",
                data={"requiredCapabilities": {capability: {}}},
            )
            self.changed.set()
            raise self.refusal
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.asks[f"input-{next(self.keys)}"] = (method, params, future)
        self.changed.set()
        return await future


Resume = Callable[[str, CallContext, dict[str, Any]], Awaitable[dict[str, Any]]]


class InputBridge:
    """Upstream calls parked while a modern client answers their input requests.

    With several instances (``redis.url``), a token names the instance that parked its call
    (``catalyst-input:<instance>.<random>``), and a retry that reaches another instance is
    passed to that one by ``remote`` (:mod:`catalyst_mcp.cluster.parked`)."""

    def __init__(self) -> None:
        self._parked: dict[str, _Parked] = {}
        self.instance: str | None = None  # this instance's id, when there are several
        self.remote: Resume | None = None  # resumes a call parked on another instance

    @staticmethod
    def owns(params: dict[str, Any]) -> bool:
        state = params.get("requestState")
        return isinstance(state, str) and state.startswith(STATE_PREFIX)

    async def run(
        self,
        ctx: CallContext,
        params: dict[str, Any],
        work: Callable[[CallContext], Coroutine[Any, Any, dict[str, Any]]],
    ) -> dict[str, Any]:
        """Run ``work`` (or resume the parked call ``params`` name) until it completes or asks."""
        self._sweep()
        if self.owns(params):
            parked = self._parked.get(params["requestState"])
            if parked is None and self.remote is not None:
                owner = _owner(params["requestState"])
                if owner is not None and owner != self.instance:
                    return await self.remote(owner, ctx, params)
            if parked is None or not _same_call(parked, ctx, params):
                # a token of another caller, method or tool is as good as an unknown one
                raise InvalidParams("requestState is unknown or expired; send the request again")
            del self._parked[params["requestState"]]
            parked.ctx.emit = ctx.emit  # later progress goes to the retry's stream
            responses = params.get("inputResponses")
            if isinstance(responses, dict):
                for key, answer in responses.items():
                    entry = parked.asks.get(key)
                    if entry is not None and not entry[2].done() and isinstance(answer, dict):
                        entry[2].set_result(answer)
                        del parked.asks[key]
        else:
            parked = _Parked(ctx)
            parked.target = _target(params)
            ctx.ask = parked.ask
            parked.task = asyncio.create_task(work(ctx))
        return await self._wait(parked)

    async def _wait(self, parked: _Parked) -> dict[str, Any]:
        assert parked.task is not None
        while not parked.asks:
            parked.changed.clear()
            waiter = asyncio.create_task(parked.changed.wait())
            try:
                await asyncio.wait({parked.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                parked.task.cancel()
                raise
            finally:
                waiter.cancel()
            if parked.refusal is not None:
                parked.task.cancel()
                raise parked.refusal
            if parked.task.done():
                return parked.task.result()
        await asyncio.sleep(0)  # let concurrent asks of the same call join this round
        token = STATE_PREFIX + secrets.token_urlsafe(24)
        if self.instance is not None:
            token = f"{STATE_PREFIX}{self.instance}.{token[len(STATE_PREFIX) :]}"
        parked.expires = time.monotonic() + PARK_SECONDS
        self._parked[token] = parked
        return {
            "resultType": "input_required",
            "inputRequests": {
                key: {"method": method, "params": params}
                for key, (method, params, _) in parked.asks.items()
            },
            "requestState": token,
        }

    def _sweep(self) -> None:
        now = time.monotonic()
        for token in [t for t, p in self._parked.items() if p.expires <= now]:
            parked = self._parked.pop(token)
            if parked.task is not None:
                parked.task.cancel()

    def close(self) -> None:
        for parked in self._parked.values():
            if parked.task is not None:
                parked.task.cancel()
        self._parked.clear()


async def satisfy_for_legacy(
    result: dict[str, Any],
    params: dict[str, Any],
    ctx: CallContext,
    retry: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Answer a modern upstream's input requests by asking a legacy client, then retry."""
    ask: Asker | None = ctx.ask
    for _ in range(MAX_ROUNDS):
        if result.get("resultType") != "input_required":
            return result
        if ask is None:
            raise CatalystError(
                "the upstream needs input from the client, which this connection cannot carry"
            )
        responses: dict[str, Any] = {}
        requests = result.get("inputRequests") or {}
        for key, item in requests.items() if isinstance(requests, dict) else ():
            method = item.get("method", "") if isinstance(item, dict) else ""
            capability = method.split("/")[0]
            if not ctx.can(capability):
                raise CatalystError(
                    f"the upstream needs {capability} from the client, which it did not declare",
                    data={"requiredCapabilities": {capability: {}}},
                )
            responses[key] = await ask(method, item.get("params") or {})
        params = {**params, "inputResponses": responses}
        if "requestState" in result:
            params["requestState"] = result["requestState"]
        else:
            params.pop("requestState", None)
        result = await retry(params)
    raise CatalystError("the upstream kept asking for input; giving up after 16 rounds")


def _owner(token: str) -> str | None:
    """The instance that parked the call a token names (None: a token of one instance)."""
    owner, dot, _ = token[len(STATE_PREFIX) :].partition(".")
    return owner if dot and owner else None


def _target(params: dict[str, Any]) -> str | None:
    name = params.get("name", params.get("uri"))
    return name if isinstance(name, str) else None


def _same_call(parked: _Parked, retry: CallContext, params: dict[str, Any]) -> bool:
    """Whether a retry resumes its own call: same caller, method and object."""
    return (
        same_caller(parked.ctx.identity, retry.identity)
        and parked.ctx.method == retry.method
        and parked.target == _target(params)
    )
