"""uvicorn's httptools protocol with a deadline for request headers (slowloris).

uvicorn times out idle keep-alive connections but not a request whose line and headers trickle in:
a client sending a byte every few seconds would hold its connection (and a ``--max-connections``
slot) forever. Here every request must have its headers complete within ``header_timeout`` seconds
of its connection opening (or of its first byte, on a kept-alive connection); otherwise it is
answered 408 and closed. Slow bodies are the application's business (``Policy.body_timeout``).
"""

from __future__ import annotations

from asyncio import TimerHandle

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s")
_BODY = (b'{"message":"The request headers were not received in time.","type":"invalid_request_error",'
         b'"param":null,"code":"request_timeout"}')


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 30.0

    def _arm(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            self._header_timer: TimerHandle | None = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT % (len(_BODY), _BODY))
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol_class(header_timeout: float) -> type[GuardedHttpToolsProtocol]:
    return type("HttpToolsProtocol", (GuardedHttpToolsProtocol,), {"header_timeout": header_timeout})
