"""A real SMTP server (aiosmtpd) on loopback that records messages and can misbehave on purpose.

Used in-process by the tests (`Sink` in a thread) and as a separate process by bench/digest.py
(`python tests/smtp_sink.py --port N --log FILE`), which logs one `Message-ID<TAB>recipient` line
per accepted message.
"""

from __future__ import annotations

import argparse
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.MULTILINE | re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes
    message_id: str
    tls: str | None = None  # the session's TLS version ("TLSv1.3"), None for plain text
    user: str | None = None  # who authenticated, if anyone

    def parse(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkHandler:
    """Accepts everything unless told otherwise; counts DATA commands to misbehave at the Nth."""

    log_path: Path | None = None
    messages: list[Received] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply
    data_replies: dict[int, str] = field(default_factory=dict)  # Nth DATA (0-based) -> reply
    drop_at: set[int] = field(default_factory=set)  # Nth DATA: hang up without answering
    delay_s: float = 0.0
    data_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            n = self.data_count
            self.data_count += 1
        if n in self.drop_at:
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        if n in self.data_replies:
            return self.data_replies[n]
        if self.delay_s:
            time.sleep(self.delay_s)
        data = bytes(envelope.original_content or envelope.content)
        match = MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        mid = match.group(1).decode() if match else ""
        ssl_object = server.transport.get_extra_info("ssl_object")
        tls = ssl_object.version() if ssl_object is not None else None
        user = session.auth_data if session.authenticated else None
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append(Received(envelope.mail_from, rcpt, data, mid, tls, user))
                if self.log_path is not None:
                    with self.log_path.open("a") as fh:
                        fh.write(f"{mid}\t{rcpt}\n")
        return "250 Message accepted for delivery"

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for m in self.messages:
            out.setdefault(m.recipient, []).append(m)
        return out


def password_authenticator(users: dict[str, str]) -> Any:
    """An aiosmtpd authenticator accepting exactly these user/password pairs (LOGIN, PLAIN)."""

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=users.get(login) == password, handled=False, auth_data=login)

    return authenticate


class Sink:
    """An aiosmtpd server in a background thread, on a free loopback port.

    `starttls`: a server TLS context offered via STARTTLS and required before MAIL.
    `tls`: a server TLS context for implicit TLS (the whole connection, like port 465).
    `users`: require AUTH with one of these user/password pairs (only over TLS)."""

    def __init__(
        self,
        handler: SinkHandler | None = None,
        *,
        starttls: ssl.SSLContext | None = None,
        tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.handler = handler or SinkHandler()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs |= {"tls_context": starttls, "require_starttls": True}
        if tls is not None:
            kwargs["ssl_context"] = tls
        if users is not None:
            kwargs |= {
                "authenticator": password_authenticator(users),
                "auth_required": True,
                # aiosmtpd's flag only knows STARTTLS; an implicit-TLS session is already
                # encrypted, so there it must be off for AUTH to be offered at all.
                "auth_require_tls": tls is None,
            }
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class LogOnlyHandler:
    """For the benchmark: append `Message-ID<TAB>recipient` per message, keep nothing in memory."""

    def __init__(self, log_path: Path) -> None:
        self.fh = log_path.open("a", buffering=1 << 16)
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = bytes(envelope.original_content or envelope.content).split(b"\r\n\r\n", 1)[0]
        match = MESSAGE_ID.search(head)
        mid = match.group(1).decode() if match else ""
        for rcpt in envelope.rcpt_tos:
            self.fh.write(f"{mid}\t{rcpt}\n")
        self.count += 1
        if self.count % 1000 == 0:
            self.fh.flush()
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    handler = LogOnlyHandler(args.log)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(0.5)
            handler.fh.flush()
    except KeyboardInterrupt:
        pass
    finally:
        handler.fh.flush()
        controller.stop()


if __name__ == "__main__":
    main()
