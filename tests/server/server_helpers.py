"""Shared by the server tests: sample sessions, a real uvicorn server in a thread, a recording chat model."""

from __future__ import annotations

import threading
import time

SESSION_A = {
    "user": "ana", "session_id": "s1", "started_at": "2024-03-01T10:00:00+01:00",
    "turns": [
        {"speaker": "Ana", "role": "user", "text": "My sister Lena gets married in Sintra on June 15th."},
        {"speaker": "assistant", "role": "assistant", "text": "Congratulations to Lena! Sintra is lovely."},
    ],
}
SESSION_B = {
    "user": "ana", "session_id": "s1", "started_at": "2024-04-02T09:30:00Z",
    "turns": [
        {"speaker": "Ana", "role": "user", "text": "We adopted a beagle and named him Biscuit."},
        {"speaker": "assistant", "role": "assistant", "text": "Biscuit is a great name for a beagle."},
    ],
}


class ServerThread:
    """A real uvicorn server on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="auto"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class RecordingModel:
    """Wraps a chat model and keeps the messages of each call (to see what the proxy sent upstream)."""

    def __new__(cls, inner):
        from convmem.providers.chat import ChatModel

        class _Recording(ChatModel):
            name = inner.name

            def __init__(self):
                self.calls: list[list[dict]] = []

            def generate(self, messages, **kw):
                self.calls.append(list(messages))
                return inner.generate(messages, **kw)

            def stream(self, messages, **kw):
                self.calls.append(list(messages))
                yield from inner.stream(messages, **kw)

        return _Recording()
