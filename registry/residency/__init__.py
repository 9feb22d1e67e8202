"""Serving residency: which adapters stay warm on which serving worker (issue 12).

This package is plain Python and NumPy and must never import Django: the simulator and the trace
generators run without a database or settings, and the planner runs in the registry's re-plan task,
the simulator and the benchmarks with nothing but its inputs. A test checks that importing it leaves Django
unloaded.

- traces: synthetic request traces (Zipf, S-LoRA's power law, drifting popularity, bursty Gamma
  arrivals, a rank mix of sizes), written as CSV `ts,adapter,base,bytes`.
- planner: which adapters each serving worker keeps in GPU, host memory and on disk (pins, base
  affinity, rank and capacity limits, replication, hysteresis), and where routers send each one.
- forecast: demand from decayed request counts, the canary split, drift detection.
- simulate: replays a trace against W workers with GPU and host tiers under an eviction policy
  (engine-cache baselines `lru`, `lfu`, the clairvoyant reference `belady`, and `planner`, which
  runs through replay.py: re-plans from the past only, the engine's LRU between plans).
- telemetry_replay: the last day's telemetry windows turned into a trace for the Residency page.
- eviction: those policies, shared with our own workers' resident cache (bases by bytes, adapter
  slots per base), so the simulator's `lru` is the code the workers run.
- snapshot: what a worker reports it holds resident (typed, validated), read by routing, metrics,
  the Workers page and `adapterctl workers`.
- actions: a serving worker's desired state compiled into vLLM's and SGLang's runtime LoRA calls,
  for the plan API (`?format=vllm|sglang`) and `adapterctl residency apply` alike.
"""
