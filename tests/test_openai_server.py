"""The OpenAI provider against a real server: llama-cpp-python's own, serving SmolLM2."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

import assay
from assay.attachments import Attachment
from assay.engine import log_store

from .conftest import declare

pytestmark = pytest.mark.slow


@pytest.fixture
def served(assay_home: Path, llama_server: str) -> assay.Model:
    declare(
        assay_home,
        f"""
- alias: served-smollm2
  base_url: {llama_server}
  model: smollm2
  context_length: 2048
  aliases: [served]
""",
    )
    return assay.get_model("served")


def test_streaming_chat_through_a_real_server(served: assay.Model) -> None:
    response = served.prompt(
        "What is the capital of France? One word.", temperature=0, max_tokens=12, seed=1
    )
    pieces = list(response)
    assert len(pieces) > 1
    text = "".join(pieces)
    assert "Paris" in text
    row = log_store().query(1)[0]
    assert row["provider"] == "openai" and row["model"] == "served-smollm2"
    assert row["response"] == text
    assert row["ttft_ms"] is not None and row["total_ms"] >= row["ttft_ms"]


def test_non_streaming_reports_usage(served: assay.Model) -> None:
    whole = served.prompt("Name a colour.", stream=False, temperature=0, max_tokens=12, seed=1)
    assert whole.text()
    assert whole.usage.input_tokens and whole.usage.input_tokens > 5
    assert whole.usage.output_tokens and 0 < whole.usage.output_tokens <= 12


def test_http_error_from_a_real_server_is_reported(assay_home: Path, llama_server: str) -> None:
    declare(
        assay_home,
        f"""
- alias: wrong-path
  base_url: {llama_server}/nowhere
""",
    )
    with pytest.raises(assay.ProviderError, match="answered 404"):
        assay.get_model("wrong-path").prompt("hi").text()
    assert log_store().query(1)[0]["error"].endswith("answered 404: Not Found")


@pytest.fixture
def recording_proxy(llama_server: str) -> Iterator[tuple[str, list[dict]]]:
    """A pass-through proxy in front of the llama.cpp server that keeps every request body."""
    bodies: list[dict] = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(json.loads(raw))
            upstream = httpx.post(
                llama_server.removesuffix("/v1") + self.path,
                content=raw,
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    server.shutdown()


def test_image_attachment_through_the_openai_path(
    assay_home: Path, recording_proxy: tuple[str, list[dict]], tmp_path: Path
) -> None:
    """The body carries the image as OpenAI's documented image_url data URI.

    No vision model is available offline: SmolLM2 reads text only, and llama.cpp's server
    answers a list-of-parts message for a text-only chat template with a 500 ("can only
    concatenate str (not "list") to str"). So this checks what assay sends, and that the
    server's refusal reaches the user as one clear error with the attempt still logged; it
    cannot check that a model saw the picture.
    """
    base, bodies = recording_proxy
    declare(
        assay_home,
        f"""
- alias: served-vision
  base_url: {base}
  model: smollm2
  attachments: [image/png, image/jpeg]
""",
    )
    image = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
    response = assay.get_model("served-vision").prompt(
        "What colour is this?",
        attachments=[Attachment.from_arg(str(image))],
        max_tokens=5,
        temperature=0,
        stream=False,
        max_retries=0,
    )
    with pytest.raises(assay.ProviderError, match="answered 500: can only concatenate str"):
        response.text()
    content = bodies[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What colour is this?"}
    assert content[1]["type"] == "image_url"
    encoded = base64.b64encode(image.read_bytes()).decode()
    assert content[1]["image_url"]["url"] == f"data:image/png;base64,{encoded}"
    row = log_store().query(1)[0]
    assert row["attachments"][0]["type"] == "image/png"
    assert row["attachments"][0]["id"] == hashlib.sha256(image.read_bytes()).hexdigest()
