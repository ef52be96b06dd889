"""Open mode against a real browser: headless Chromium, driven over the DevTools protocol, visits an
attacker's page (``http://evil.example:<port>/``, mapped to 127.0.0.1 by a host resolver rule) that
tries to overwrite a workspace file of an open-mode server by a cross-site form post and by a
``no-cors`` fetch, and a DNS-rebound name (``evil.example`` at Cairn's own port) tries to read a
listing. Each is refused with 403 and changes nothing. The same form post from a page on a loopback
origin does overwrite the file: the harness really delivers the browser's requests.

Chromium is Debian's ``chromium`` package; without it the module is skipped, unless
``CAIRN_TEST_REQUIRE_CHROMIUM=1`` (CI sets it), where a missing browser fails the run."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import ClientConnection, connect

if TYPE_CHECKING:
    from conftest import LiveServer


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
REQUIRED = os.environ.get("CAIRN_TEST_REQUIRE_CHROMIUM") == "1"
if CHROMIUM is None and not REQUIRED:
    pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.parametrize("backend", ["sqlite+local"], indirect=True)

EVIL = "evil.example"
ORIGINAL = "original"
STEP_TIMEOUT = 15.0
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    f"--host-resolver-rules=MAP {EVIL} 127.0.0.1",
]


class Browser:
    """A DevTools connection to a running Chromium; each visit gets a tab of its own."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if reply.get("id") != message_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]  # type: ignore[no-any-return]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first event (seen so far or still to come) that ``predicate`` accepts."""
        deadline = time.monotonic() + STEP_TIMEOUT
        seen = 0
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"Chromium never reported {what}")
            with contextlib.suppress(TimeoutError):
                self.events.append(json.loads(self._ws.recv(timeout=left)))

    @contextlib.contextmanager
    def tab(self) -> Iterator[str]:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self.call("Network.enable", session)
            yield session
        finally:
            self.call("Target.closeTarget", targetId=target)

    def response(self, session: str, url: str) -> dict[str, Any]:
        """The response Chromium got for ``url`` (without query) in the tab: its status, headers."""

        def matches(event: dict[str, Any]) -> bool:
            return (
                event.get("sessionId") == session
                and event.get("method") == "Network.responseReceived"
                and event["params"]["response"]["url"].split("?")[0] == url
            )

        return self.wait_for(matches, f"a response from {url}")["params"]["response"]  # type: ignore[no-any-return]

    def visit(self, session: str, url: str) -> None:
        self.call("Page.navigate", session, url=url)

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def poll(self, session: str, expression: str) -> Any:
        """The value of ``expression`` in the tab once it is truthy (or the last one, at the deadline)."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while not (value := self.evaluate(session, expression)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return value

    def text(self, session: str, url: str) -> str:
        """The document the tab shows once it has loaded ``url``."""
        loaded = f"document.URL.startsWith({json.dumps(url)}) && document.readyState === 'complete'"
        assert self.poll(session, loaded), f"the tab never finished loading {url}"
        return str(self.evaluate(session, "document.documentElement.outerHTML"))


class Pages:
    """A tiny web server on 127.0.0.1 serving the HTML a test puts under a path."""

    def __init__(self) -> None:
        pages = self.pages = dict[str, str]()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not found").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[ClientConnection]:
    """Headless Chromium with a fresh profile, and a DevTools connection to it."""
    process = subprocess.Popen(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the launcher is a shell script: end its whole group afterwards
    )
    try:
        active_port = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active_port.exists() and len(active_port.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = active_port.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            yield ws
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if CHROMIUM is None:  # each test fails with the reason; the rest of the run goes on
        pytest.fail("Chromium is required (CAIRN_TEST_REQUIRE_CHROMIUM=1) but no chromium binary is on PATH")
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as ws:
        yield Browser(ws)


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    served = Pages()
    yield served
    served.close()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    """An open-mode server (no key was ever created) holding ``notes/a.txt`` = ``original``."""
    live = make_server(keyed=False)
    with live.client() as http:
        response = http.post(
            "/api/v1/files/upload", files={"file": ("a.txt", ORIGINAL)}, data={"dir": "notes"}
        )
        assert response.status_code == 200, response.text
    assert read_notes(live) == ORIGINAL
    return live


def read_notes(server: LiveServer) -> str:
    with server.client() as http:
        response = http.get("/api/v1/files/download", params={"path": "notes/a.txt"})
    assert response.status_code == 200, response.text
    return response.text


# The page builds the file part in script (DataTransfer), as no page can pick a file of the visitor's.
FORM_POST = """<!doctype html><body><script>
const form = document.createElement('form');
form.method = 'post';
form.enctype = 'multipart/form-data';
form.action = %(action)s;
const dir = Object.assign(document.createElement('input'), {type: 'hidden', name: 'dir', value: 'notes'});
const file = Object.assign(document.createElement('input'), {type: 'file', name: 'file'});
const picked = new DataTransfer();
picked.items.add(new File(['pwned'], 'a.txt', {type: 'text/plain'}));
file.files = picked.files;
form.append(dir, file);
document.body.append(form);
form.submit();
</script></body>"""

NO_CORS_FETCH = """<!doctype html><body><script>
const body = new FormData();
body.append('dir', 'notes');
body.append('file', new File(['pwned'], 'a.txt', {type: 'text/plain'}));
fetch(%(action)s, {method: 'POST', body, mode: 'no-cors'}).then(
  () => { document.title = 'answered'; },
  (error) => { document.title = 'failed: ' + error; },
);
</script></body>"""


def serve_page(pages: Pages, name: str, template: str, server: LiveServer) -> str:
    """Put the page under ``/<name>``; returns the upload URL it targets."""
    action = f"{server.url}/api/v1/files/upload"
    pages.pages[f"/{name}"] = template % {"action": json.dumps(action)}
    return action


def test_cross_site_form_post_cannot_overwrite_a_file(
    server: LiveServer, browser: Browser, pages: Pages
) -> None:
    action = serve_page(pages, "form", FORM_POST, server)
    with browser.tab() as tab:
        browser.visit(tab, f"http://{EVIL}:{pages.port}/form")
        answer = browser.response(tab, action)
    assert (answer["status"], read_notes(server)) == (403, ORIGINAL), answer


def test_cross_site_no_cors_fetch_cannot_overwrite_a_file(
    server: LiveServer, browser: Browser, pages: Pages
) -> None:
    action = serve_page(pages, "fetch", NO_CORS_FETCH, server)
    with browser.tab() as tab:
        browser.visit(tab, f"http://{EVIL}:{pages.port}/fetch")
        answer = browser.response(tab, action)  # a no-cors answer is opaque to the page, not to DevTools
        settled = browser.poll(tab, "document.title")
    assert settled == "answered", settled  # the fetch reached Cairn: it was not stopped in the browser
    assert (answer["status"], read_notes(server)) == (403, ORIGINAL), answer


def test_dns_rebound_name_cannot_read_a_listing(server: LiveServer, browser: Browser) -> None:
    port = urlsplit(server.url).port
    listing = f"http://{EVIL}:{port}/api/v1/files"
    with browser.tab() as tab:
        browser.visit(tab, f"{listing}?path=notes")
        answer = browser.response(tab, listing)
        shown = browser.text(tab, listing)
    assert answer["status"] == 403, (answer, shown)
    assert "a.txt" not in shown


def test_form_post_from_a_loopback_page_does_overwrite(
    server: LiveServer, browser: Browser, pages: Pages
) -> None:
    """The control: the same form from http://127.0.0.1:<port>/ is a loopback origin and goes through."""
    action = serve_page(pages, "form", FORM_POST, server)
    with browser.tab() as tab:
        browser.visit(tab, f"http://127.0.0.1:{pages.port}/form")
        answer = browser.response(tab, action)
    assert (answer["status"], read_notes(server)) == (200, "pwned"), answer
