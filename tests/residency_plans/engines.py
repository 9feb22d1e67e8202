"""Local HTTP servers that answer like vLLM's and SGLang's runtime LoRA APIs (real sockets, real JSON).

They keep what the engines keep and refuse what they refuse, with their status codes and bodies
(vllm/entrypoints/openai/models/serving.py; sglang/srt/entrypoints/http_server.py and io_struct
LoRAUpdateOutput): vLLM answers 400 to a name already loaded and 404 to unloading an unknown one,
lists loaded LoRAs in /v1/models with `parent` and `root`; SGLang answers {"success",
"error_message", "loaded_adapters"}, 400 when success is false, and lists only its base model.
A load needs a directory with adapter_config.json at lora_path, as both engines read one there.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_MODEL = "acme/llama"


class Engine:
    """State and behaviour; `calls` records every request as (method, path, body)."""

    def __init__(self):
        self.loras: dict[str, dict] = {}  # name -> {"path", "pinned"}
        self.calls: list[tuple] = []
        self.lock = threading.Lock()
        self.fail_loads_with: tuple[int, dict] | None = None  # force an error answer to loads

    def mutating_calls(self) -> list[tuple]:
        return [call for call in self.calls if call[0] == "POST"]

    def handle(self, method: str, path: str, body: dict | None) -> tuple[int, object]:
        raise NotImplementedError


def _adapter_dir_ok(path: str) -> bool:
    return bool(path) and (Path(path) / "adapter_config.json").is_file()


class VLLM(Engine):
    def handle(self, method, path, body):
        if (method, path) == ("GET", "/v1/models"):
            cards = [{"id": BASE_MODEL, "object": "model", "root": BASE_MODEL, "parent": None}]
            cards += [
                {"id": n, "object": "model", "root": e["path"], "parent": BASE_MODEL} for n, e in self.loras.items()
            ]
            return 200, {"object": "list", "data": cards}
        if (method, path) == ("POST", "/v1/load_lora_adapter"):
            return self._load(body or {})
        if (method, path) == ("POST", "/v1/unload_lora_adapter"):
            return self._unload(body or {})
        return 404, {"detail": "Not Found"}

    @staticmethod
    def _error(status: int, message: str, kind: str) -> tuple[int, dict]:
        return status, {"error": {"message": message, "type": kind, "param": None, "code": status}}

    def _load(self, body):
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return self._error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in self.loras:
            return self._error(
                400,
                f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, "
                "set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        if self.fail_loads_with:
            return self.fail_loads_with
        if not _adapter_dir_ok(path):
            return self._error(404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError")
        self.loras[name] = {"path": path, "pinned": False}
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def _unload(self, body):
        name = body.get("lora_name")
        if name not in self.loras:
            return self._error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.loras[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."


class SGLang(Engine):
    def __init__(self, max_loras_per_batch: int = 8):
        super().__init__()
        self.max_pinned = max_loras_per_batch - 1  # SGLang keeps one slot unpinned

    def handle(self, method, path, body):
        if (method, path) == ("GET", "/v1/models"):
            return 200, {"object": "list", "data": [{"id": BASE_MODEL, "object": "model", "root": BASE_MODEL}]}
        if (method, path) == ("POST", "/load_lora_adapter"):
            return self._load(body or {})
        if (method, path) == ("POST", "/unload_lora_adapter"):
            return self._unload(body or {})
        return 404, {"detail": "Not Found"}

    def _answer(self, ok: bool, message: str = "") -> tuple[int, dict]:
        loaded = {name: entry["path"] for name, entry in self.loras.items()}
        return (200 if ok else 400), {"success": ok, "error_message": message, "loaded_adapters": loaded}

    def _load(self, body):
        name, path, pinned = body.get("lora_name"), body.get("lora_path"), bool(body.get("pinned", False))
        if name in self.loras:
            return self._answer(False, f"LoRA adapter with name {name} already exists.")
        if self.fail_loads_with:
            return self.fail_loads_with
        if not _adapter_dir_ok(path):
            return self._answer(False, f"Failed to load LoRA adapter {name} from {path}: no adapter_config.json")
        if pinned and sum(e["pinned"] for e in self.loras.values()) >= self.max_pinned:
            return self._answer(False, f"Cannot pin {name}: at most {self.max_pinned} pinned adapters.")
        self.loras[name] = {"path": path, "pinned": pinned}
        return self._answer(True)

    def _unload(self, body):
        name = body.get("lora_name")
        if name not in self.loras:
            return self._answer(False, f"LoRA adapter {name} is not loaded.")
        del self.loras[name]
        return self._answer(True)


class EngineServer:
    """`engine` behind ThreadingHTTPServer on 127.0.0.1:<free port>, in a daemon thread."""

    def __init__(self, engine: Engine):
        self.engine = engine
        handler = type("Handler", (_Handler,), {"engine": engine})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "EngineServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    engine: Engine

    def log_message(self, *args) -> None:  # quiet tests
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self.engine.lock:
            self.engine.calls.append((method, self.path, body))
            status, answer = self.engine.handle(method, self.path, body)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")
