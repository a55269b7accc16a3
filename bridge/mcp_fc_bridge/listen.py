"""2026-07-28 ``subscriptions/listen``: the request whose response is a stream of change notifications.

The revision has no standing GET stream; a client opts in to list changes and resource updates on a listen
request instead. The stream starts with ``notifications/subscriptions/acknowledged`` naming what the bridge
will deliver (only what the stdio server can send), and every frame carries the listen request's id in
``_meta``. Resource subscriptions share the handshake sessions' refcount, so the stdio server is subscribed
once per URI whoever asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .relay import Relay, Sink, UpstreamError
from .upstream import ServerExited

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
#: filter key -> (the server capability that must advertise listChanged, the notification it opts in to)
LIST_CHANGES = {
    "toolsListChanged": ("tools", "notifications/tools/list_changed"),
    "promptsListChanged": ("prompts", "notifications/prompts/list_changed"),
    "resourcesListChanged": ("resources", "notifications/resources/list_changed"),
}
UPDATED = "notifications/resources/updated"


@dataclass(eq=False)
class Listener:
    request_id: Any
    methods: frozenset[str]
    stream: Sink = field(default_factory=lambda: Sink(persistent=True))
    subscriptions: set[str] = field(default_factory=set)

    def post(self, message: dict[str, Any]) -> None:
        """Deliver ``message`` if this stream opted in to it, stamped with the subscription id."""
        method = message.get("method")
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        wanted = method in self.methods or (method == UPDATED and params.get("uri") in self.subscriptions)
        if wanted:
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            stamped = {**params, "_meta": {**meta, SUBSCRIPTION_ID_KEY: self.request_id}}
            self.stream.put({**message, "params": stamped})


def honored(wanted: Any, caps: dict[str, Any]) -> dict[str, Any]:
    """The part of the client's filter the stdio server can serve (the spec: omit what is unsupported)."""
    wanted = wanted if isinstance(wanted, dict) else {}
    out: dict[str, Any] = {}
    for key, (capability, _) in LIST_CHANGES.items():
        cap = caps.get(capability)
        if wanted.get(key) and isinstance(cap, dict) and cap.get("listChanged"):
            out[key] = True
    uris = wanted.get("resourceSubscriptions")
    resources = caps.get("resources")
    if isinstance(uris, list) and isinstance(resources, dict) and resources.get("subscribe"):
        out["resourceSubscriptions"] = [uri for uri in uris if isinstance(uri, str)]
    return out


async def open_listener(relay: Relay, body: dict[str, Any]) -> Listener:
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    agreed = honored(params.get("notifications"), relay.capabilities)
    methods = frozenset(LIST_CHANGES[key][1] for key in agreed if key in LIST_CHANGES)
    listener = Listener(body["id"], methods)
    for uri in agreed.get("resourceSubscriptions", []):
        if relay.subscribe(listener, uri):
            try:
                await relay.call("resources/subscribe", {"uri": uri}, 30.0)
            except (UpstreamError, TimeoutError, ServerExited):
                pass  # the server refused: nothing will come for it, as from the server directly
    relay.listeners.add(listener)
    ack = {"notifications": agreed, "_meta": {SUBSCRIPTION_ID_KEY: body["id"]}}
    listener.stream.put(
        {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": ack}
    )
    return listener


async def close_listener(relay: Relay, listener: Listener) -> None:
    relay.listeners.discard(listener)
    for uri in list(listener.subscriptions):
        if relay.unsubscribe(listener, uri):
            await relay.notify_unsubscribe(uri)
