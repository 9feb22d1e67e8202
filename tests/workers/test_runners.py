"""The evaluation runners and the dynamic check on a resident base, in-process."""

import pytest

from workers.runtime import runners
from workers.runtime.cache import ByteTokenizer, ResidentBase


@pytest.fixture
def resident(zoo):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(zoo.llama).eval()
    model = PeftModel.from_pretrained(base, zoo.adapters["attention"], adapter_name="a")
    model.load_adapter(zoo.child_adapter, adapter_name="b")
    model.set_adapter("a")
    return ResidentBase("id", "acme/llama:v1", "causal_lm", model, ByteTokenizer(base.config.vocab_size), 0, active="a")


def test_causal_lm_metrics_differ_between_adapter_and_base(resident):
    rows = [{"text": "the registry keeps one copy of each base"}, {"text": "adapters are small"}]
    adapter = runners.measure(resident, "causal_lm", rows)
    bare = runners.measure(resident, "causal_lm", rows, bare=True)
    assert adapter["examples"] == 2 and adapter["tokens"] > 10
    assert adapter["loss"] != bare["loss"] and adapter["perplexity"] > 1


def test_measurements_are_repeatable_with_the_fixed_seed(resident):
    rows = [{"prompt": "2+2=", "answer": "4"}, {"prompt": "hello", "answer": "world"}]
    first = runners.measure(resident, "exact_match", rows)
    second = runners.measure(resident, "exact_match", rows)
    assert first["exact_match"] == second["exact_match"] and 0 <= first["exact_match"] <= 1


def test_exact_match_needs_a_causal_lm(resident):
    resident.head = "classification"
    with pytest.raises(ValueError, match="causal language model"):
        runners.measure(resident, "exact_match", [{"prompt": "a", "answer": "b"}])
    with pytest.raises(ValueError, match="causal lm model"):
        runners.measure(resident, "causal_lm", [{"text": "a b"}])
    resident.head = "causal_lm"
    with pytest.raises(ValueError, match="modules_to_save"):
        runners.measure(resident, "classification", [{"text": "a", "label": 1}])


def test_the_dynamic_check_passes_a_trained_adapter_and_sees_switches(resident):
    verdict, reasons, details = runners.dynamic_check(resident)
    assert verdict == "pass" and reasons == [] and details["max_abs_output_change"] > 0
    resident.model.set_adapter("b")
    resident.active = "b"
    assert runners.dynamic_check(resident)[2]["max_abs_output_change"] != details["max_abs_output_change"]


def test_macro_f1():
    assert runners._macro_f1([(1, 1), (0, 0)]) == 1.0
    assert runners._macro_f1([(1, 1), (1, 0)]) == pytest.approx((2 / 3 + 0) / 2)
