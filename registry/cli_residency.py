"""adapterctl residency apply: bring one serving engine to the registry's plan for its worker.

    adapterctl residency apply --worker NAME --engine-url URL [--dir DIR] [--engine vllm|sglang] [--dry-run]

1. GET /api/v1/residency/workers/NAME/plan?format=desired: the worker's GPU, host and disk entries.
2. Pull every planned adapter into DIR/<ns>/<name>/<digest hex> with `adapterctl pull`'s verified
   download (registry/pull.py). One already pulled and verified by an earlier run, whose files have
   the sizes and modification times recorded then, is not fetched or hashed again.
3. Learn what the engine holds: vLLM lists its LoRA adapters in GET /v1/models (cards with a
   `parent`); SGLang lists none, so what this command loaded there is recorded in DIR's state file
   and corrected from the `loaded_adapters` every SGLang answer carries.
4. Send the calls registry/residency/actions.py compiles (unloads, then loads; disk entries are
   only pulled), one line each, then a summary. A second run finds nothing to do.

HTTP only and no Django, like registry/cli.py, whose build_parser registers this (add_parser).
Handlers raise `args.fail`, registry.cli's CliError passed in (see registry/cli_promotions.py).
"""

import json
import os
import tempfile
from pathlib import Path

import httpx

from registry.residency.actions import (
    ENGINES,
    TIERS,
    DesiredStateError,
    Held,
    action_line,
    compile_actions,
    wanted_adapters,
)

STATE_FILE = ".adapterctl-residency.json"
STATE_VERSION = 1


def add_parser(commands, cli_error: type[Exception]) -> None:
    """Register `adapterctl residency apply` on the CLI's subcommands; the handler raises `cli_error`."""
    residency = commands.add_parser("residency", help="serving residency: apply a worker's plan to its engine")
    verbs = residency.add_subparsers(dest="residency_command", required=True)
    apply = verbs.add_parser(
        "apply",
        help="pull a serving worker's planned adapters (verified) and load them into its engine",
        description=(
            "Fetch the registry's plan for --worker, pull every planned adapter into DIR (verified like "
            "`adapterctl pull`), then load and unload adapters through the engine's runtime LoRA API until it "
            "holds what the plan wants. Idempotent: a second run does nothing. vLLM needs "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora; SGLang needs --enable-lora."
        ),
    )
    apply.add_argument("--worker", required=True, metavar="NAME", help="the serving worker's name in the registry")
    apply.add_argument(
        "--engine-url", required=True, metavar="URL", help="the engine's HTTP address, e.g. http://127.0.0.1:8000"
    )
    apply.add_argument(
        "--dir",
        default="adapters",
        metavar="DIR",
        help="where the adapters are kept (./adapters); the engine reads them from there",
    )
    apply.add_argument(
        "--engine", choices=ENGINES, help="the engine's API (default: the worker's engine in the registry)"
    )
    apply.add_argument("--dry-run", action="store_true", help="print what would be pulled and sent; change nothing")
    apply.add_argument("--engine-timeout", type=float, default=300, metavar="SECONDS", help="per engine call (300): a large adapter loads slowly")  # fmt: skip
    apply.set_defaults(handler=cmd_residency_apply, fail=cli_error)


# --- The state file: verified pulls, and what SGLang holds -----------------------------------------


def _read_state(directory: Path, fail) -> dict:
    path = directory / STATE_FILE
    if not path.exists():
        return {"version": STATE_VERSION, "verified": {}, "engines": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {path}: {exc}; delete it and run again (everything is re-verified)") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise fail(f"{path} is not a state file this adapterctl writes; delete it and run again")
    state.setdefault("verified", {})
    state.setdefault("engines", {})
    return state


def _write_state(directory: Path, state: dict) -> None:
    """Atomically: a run killed half-way leaves the previous state, never half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=directory, prefix=STATE_FILE, suffix=".part")
    with os.fdopen(handle, "w") as out:
        json.dump(state, out, indent=1, sort_keys=True)
    os.replace(scratch, directory / STATE_FILE)


def _fingerprint(target: Path, files: list[str]) -> dict | None:
    """Size and modification time of each file: unchanged since it was verified means still verified."""
    prints = {}
    for name in files:
        try:
            stat = (target / name).stat()
        except OSError:
            return None
        prints[name] = [stat.st_size, stat.st_mtime_ns]
    return prints


def _still_verified(state: dict, ref: str, relative: str, target: Path) -> bool:
    record = state["verified"].get(ref)
    if not isinstance(record, dict) or record.get("path") != relative or not record.get("files"):
        return False
    return _fingerprint(target, list(record["files"])) == record["files"]


# --- The registry: the plan and the pulls ----------------------------------------------------------


def _plan(registry, worker: str) -> dict:
    return registry.request("GET", f"residency/workers/{worker}/plan", params={"format": "desired"})


def _pull(registry, ref: str, target: Path, fail) -> dict:
    from registry import pull  # download and verify, as `adapterctl pull` does

    version = registry.request("GET", f"adapters/{ref}")
    try:
        return pull.pull_version(registry.client, "adapters", version, target)
    except pull.PullError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise fail(f"download of {ref} from {registry.url} failed: {exc}; run apply again to resume") from None
    except OSError as exc:
        raise fail(f"cannot write {ref} to {target}: {exc}") from None


def _pull_planned(args, registry, plan: dict, state: dict, directory: Path) -> list[dict]:
    """Every planned adapter (disk entries too) present and verified under DIR; what had to be pulled."""
    pulled = []
    for wanted in wanted_adapters(plan, TIERS):
        target = directory / wanted.path
        if _still_verified(state, wanted.ref, wanted.path, target):
            continue
        received = None
        if not args.dry_run:
            result = _pull(registry, wanted.ref, target, args.fail)
            names = [f["path"] for f in result["files"]]
            state["verified"][wanted.ref] = {"path": wanted.path, "files": _fingerprint(target, names)}
            _write_state(directory, state)
            received = sum(f["size"] for f in result["files"] if f["written"])
        pulled.append({"ref": wanted.ref, "tier": wanted.tier, "directory": str(target), "bytes": received})
        if not args.json:
            print(f"pull    {wanted.ref}  {wanted.tier} -> {target}{'  (would)' if args.dry_run else ''}")
    return pulled


# --- The engine -------------------------------------------------------------------------------------


class Engine:
    """The serving engine's runtime LoRA API (see registry/residency/actions.py for both engines')."""

    def __init__(self, kind: str, url: str, timeout: float, fail):
        self.kind, self.url, self.fail = kind, url.rstrip("/"), fail
        self.client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=10.0))

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.fail(f"cannot reach the engine at {self.url}: {exc.__class__.__name__} {exc}") from None

    def holdings(self, state: dict) -> list[Held]:
        if self.kind == "vllm":
            return self._listed()
        return [Held(ref, entry["path"], entry["pinned"]) for ref, entry in self._recorded(state).items()]

    def _listed(self) -> list[Held]:
        """vLLM's GET /v1/models: a LoRA card has `parent` (its base), `id` (lora_name) and `root` (lora_path)."""
        response = self._send("GET", "/v1/models")
        if not response.is_success:
            raise self.fail(f"the engine at {self.url} answered GET /v1/models with {_engine_error(response)}")
        try:
            cards = response.json()["data"]
            return [Held(card["id"], card.get("root") or "") for card in cards if card.get("parent")]
        except (ValueError, KeyError, TypeError):
            raise self.fail(
                f"the engine at {self.url} answered GET /v1/models with no model list; is it vLLM?"
            ) from None

    def _recorded(self, state: dict) -> dict:
        return state["engines"].setdefault(self.url, {})

    def apply(self, action, state: dict) -> str:
        """Send one call; '' when done, 'already' when the engine was there already (a concurrent run)."""
        response = self._send("POST", action.path, json=action.body)
        if self.kind == "sglang":
            self._record_sglang(action, response, state)
        if response.is_success:
            return ""
        if self.kind == "vllm" and _vllm_already(action, response):
            return "already"
        raise self.fail(f"the engine at {self.url} refused {action.op} {action.ref}: {_engine_error(response)}")

    def _record_sglang(self, action, response: httpx.Response, state: dict) -> None:
        """What SGLang holds after this call, from the `loaded_adapters` of its answer when it has them."""
        recorded = self._recorded(state)
        if response.is_success and action.op == "load":
            recorded[action.ref] = {"path": action.body["lora_path"], "pinned": action.body["pinned"]}
        elif response.is_success:
            recorded.pop(action.ref, None)
        try:
            loaded = response.json().get("loaded_adapters")
        except (ValueError, AttributeError):
            loaded = None
        if isinstance(loaded, dict):  # the engine's word wins: drop what it no longer holds
            for ref in [ref for ref in recorded if ref not in loaded]:
                recorded.pop(ref)


def _vllm_already(action, response: httpx.Response) -> bool:
    """vLLM's two answers that mean the engine is already where the call wanted it (serving.py)."""
    message = _engine_error(response)
    if action.op == "load":
        return response.status_code == 400 and "has already been loaded" in message
    return response.status_code == 404 and "cannot be found" in message


def _engine_error(response: httpx.Response) -> str:
    """The engine's own message: vLLM's {"error": {"message"}} (older: {"message"}), SGLang's {"error_message"}."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        message = message or body.get("error_message") or body.get("message") or body.get("detail")
    if not message:
        message = response.text.strip()[:300] or "no message"
    return f"HTTP {response.status_code}: {' '.join(str(message).split())}"


# --- The command -----------------------------------------------------------------------------------


def _engine_kind(args, plan: dict) -> str:
    kind = args.engine or plan.get("engine")
    if kind not in ENGINES:
        raise args.fail(
            f"worker {args.worker!r} is registered with engine {plan.get('engine')!r}; "
            f"pass --engine {' or --engine '.join(ENGINES)} to say which API {args.engine_url} speaks"
        )
    return kind


def cmd_residency_apply(args, registry) -> None:
    plan = _plan(registry, args.worker)
    kind = _engine_kind(args, plan)
    directory = Path(args.dir)
    state = _read_state(directory, args.fail)
    engine = Engine(kind, args.engine_url, args.engine_timeout, args.fail)
    held = engine.holdings(state)  # before pulling: an unreachable engine fails fast
    try:
        pulled = _pull_planned(args, registry, plan, state, directory)
        actions = compile_actions(kind, plan, held, directory=str(directory.resolve()))
    except DesiredStateError as exc:
        raise args.fail(f"the plan for {args.worker} cannot be applied: {exc}") from None
    done = []
    for action in actions:
        outcome = "would" if args.dry_run else engine.apply(action, state)
        if kind == "sglang" and not args.dry_run:
            _write_state(directory, state)
        done.append({**action.as_dict(), "outcome": outcome or "done"})
        if not args.json:
            print(f"{action_line(action)}{f'  ({outcome})' if outcome else ''}")
    _report(args, plan, pulled, done, len(wanted_adapters(plan)) - sum(a["op"] == "load" for a in done))


def _report(args, plan: dict, pulled: list, done: list, unchanged: int) -> None:
    loads = sum(a["op"] == "load" for a in done)
    unloads = sum(a["op"] == "unload" for a in done)
    if args.json:
        print(json.dumps({"worker": args.worker, "plan": plan.get("plan"), "dry_run": args.dry_run,
                          "pulled": pulled, "actions": done, "unchanged": unchanged}, indent=2))  # fmt: skip
        return
    rate = plan.get("expected_gpu_hit_rate")
    planned = plan.get("plan") or {}
    verb = "would pull" if args.dry_run else "pulled"
    print(
        f"{args.worker}: plan {planned.get('id', '?')} ({planned.get('created_at', '?')}): "
        f"{verb} {len(pulled)}, {'would load' if args.dry_run else 'loaded'} {loads}, "
        f"{'would unload' if args.dry_run else 'unloaded'} {unloads}, {max(unchanged, 0)} already held"
        + (f"; expected GPU hit rate {rate:.3f}" if isinstance(rate, int | float) else "")
        + ("" if loads or unloads or pulled else "; nothing to do")
    )
