"""Compiling a worker's desired state into vLLM and SGLang calls (registry/residency/actions.py).

Each case states the engine's holdings and the plan, and checks the exact calls, in order; applying
the calls and compiling again must give nothing (the reconcile loop is idempotent).
"""

import subprocess
import sys

import pytest

from registry.residency.actions import (
    DesiredStateError,
    Held,
    action_line,
    adapter_path,
    compile_actions,
    held_after,
    held_from_desired,
)

A, B, C, D = (f"acme/{name}@sha256:{digit * 64}" for name, digit in zip("abcd", "1234", strict=True))


def entry(ref: str) -> dict:
    return {"ref": ref, "path": adapter_path(ref), "bytes": 1000, "rank": 8}


def calls(actions) -> list[tuple]:
    return [(a.op, a.path, a.body) for a in actions]


def settled(engine: str, desired: dict, held: list[Held]) -> None:
    """Apply the compiled calls to `held`; compiling again must want nothing more."""
    actions = compile_actions(engine, desired, held)
    assert compile_actions(engine, desired, held_after(held, actions)) == []


def test_it_loads_gpu_then_host_entries_hottest_first_into_an_empty_vllm():
    desired = {"gpu": [entry(A), entry(B)], "host": [entry(C)], "disk": [entry(D)]}
    assert calls(compile_actions("vllm", desired, [], directory="/srv/adapters")) == [
        ("load", "/v1/load_lora_adapter", {"lora_name": A, "lora_path": f"/srv/adapters/acme/a/{'1' * 64}"}),
        ("load", "/v1/load_lora_adapter", {"lora_name": B, "lora_path": f"/srv/adapters/acme/b/{'2' * 64}"}),
        ("load", "/v1/load_lora_adapter", {"lora_name": C, "lora_path": f"/srv/adapters/acme/c/{'3' * 64}"}),
    ]  # D is a disk prefetch: fetched, never loaded


def test_it_unloads_what_the_plan_dropped_before_loading_and_keeps_what_vllm_holds():
    desired = {"gpu": [entry(C), entry(A)], "host": []}
    held = [Held(A, "/x/a"), Held(B, "/x/b"), Held("my-own-lora", "/tmp/mine")]
    actions = compile_actions("vllm", desired, held)
    assert calls(actions) == [
        ("unload", "/v1/unload_lora_adapter", {"lora_name": B}),
        ("load", "/v1/load_lora_adapter", {"lora_name": C, "lora_path": f"acme/c/{'3' * 64}"}),
    ]
    assert [a.why for a in actions] == ["evict", "gpu"]
    settled("vllm", desired, held)  # the foreign adapter stays: someone else loaded it


def test_it_pins_gpu_entries_and_not_host_entries_on_sglang():
    desired = {"gpu": [entry(A)], "host": [entry(B)]}
    assert calls(compile_actions("sglang", desired, [])) == [
        ("load", "/load_lora_adapter", {"lora_name": A, "lora_path": f"acme/a/{'1' * 64}", "pinned": True}),
        ("load", "/load_lora_adapter", {"lora_name": B, "lora_path": f"acme/b/{'2' * 64}", "pinned": False}),
    ]


def test_a_gpu_entry_the_planner_left_unpinned_loads_unpinned_on_sglang():
    desired = {"gpu": [entry(A), {**entry(B), "pinned": False}, {**entry(C), "pinned": True}]}
    assert [a.body["pinned"] for a in compile_actions("sglang", desired, [])] == [True, False, True]


def test_a_pinning_change_on_sglang_is_an_unload_then_a_load():
    desired = {"gpu": [entry(B)], "host": [entry(A)]}
    held = [Held(A, "p/a", pinned=True), Held(B, "p/b", pinned=False), Held(C, "p/c", pinned=True)]
    actions = compile_actions("sglang", desired, held)
    assert [(a.op, a.ref, a.why, a.body.get("pinned")) for a in actions] == [
        ("unload", C, "evict", None),
        ("unload", B, "pin", None),
        ("unload", A, "unpin", None),
        ("load", B, "gpu", True),
        ("load", A, "host", False),
    ]
    settled("sglang", desired, held)


def test_vllm_has_no_pinning_so_the_same_change_needs_nothing():
    desired = {"gpu": [entry(B)], "host": [entry(A)]}
    assert compile_actions("vllm", desired, [Held(A, "p/a", pinned=True), Held(B, "p/b")]) == []


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_it_is_idempotent_from_any_start(engine):
    desired = {"gpu": [entry(A), entry(B)], "host": [entry(C)], "disk": [entry(D)]}
    for held in ([], [Held(D, "d")], [Held(A, "a", True), Held(C, "c", True)], [Held(B, "b"), Held("other", "o")]):
        settled(engine, desired, held)


def test_an_adapter_listed_in_two_tiers_loads_once_from_the_first():
    desired = {"gpu": [entry(A)], "host": [entry(A), entry(B)]}
    actions = compile_actions("sglang", desired, [])
    assert [(a.ref, a.why, a.body["pinned"]) for a in actions] == [(A, "gpu", True), (B, "host", False)]


def test_a_previous_plan_is_what_the_engine_holds_after_applying_it():
    previous = {"gpu": [entry(A)], "host": [entry(B)], "disk": [entry(C)]}
    held = held_from_desired(previous, "/srv")
    assert held == [Held(A, f"/srv/acme/a/{'1' * 64}", True), Held(B, f"/srv/acme/b/{'2' * 64}", False)]
    assert held_from_desired(None) == []
    desired = {"gpu": [entry(B)], "host": [entry(C)]}
    assert [(a.op, a.ref) for a in compile_actions("vllm", desired, held)] == [("unload", A), ("load", C)]


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        ({"gpu": [{"path": "x"}]}, "has no immutable ref"),
        ({"gpu": [{"ref": "acme/a:v1", "path": "x"}]}, "has no immutable ref"),
        ({"host": [{"ref": A, "path": "../../etc"}]}, "unsafe adapter path"),
        ({"host": [{"ref": A, "path": "/etc/passwd"}]}, "unsafe adapter path"),
    ],
)
def test_a_desired_state_it_cannot_trust_is_refused(desired, message):
    with pytest.raises(DesiredStateError, match=message):
        compile_actions("vllm", desired, [])


def test_an_unknown_engine_is_refused():
    with pytest.raises(DesiredStateError, match="unknown engine 'lorax'"):
        compile_actions("lorax", {}, [])


def test_an_action_reads_as_one_short_line():
    load, unload = compile_actions("sglang", {"gpu": [entry(A)]}, [Held(B, "b")])[::-1]
    assert action_line(load) == f"load    acme/a@sha256:{'1' * 12}…  gpu, pinned"
    assert action_line(unload) == f"unload  acme/b@sha256:{'2' * 12}…  evict"
    assert load.as_dict()["method"] == "POST"


def test_the_module_imports_without_django():
    code = "import registry.residency.actions, sys; assert not [m for m in sys.modules if m.startswith('django')]"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
