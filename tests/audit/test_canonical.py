"""The audit writer's fast canonical JSON is byte for byte RFC 8785 (rfc8785.dumps) for every body
it can be given: JSON data as json_safe leaves it (strings, integers within 2**53, booleans, null,
lists and objects), ASCII or not, control characters included."""

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.audit.services import MAX_SAFE_INTEGER, _canonical, json_safe

TRICKY_TEXT = st.sampled_from(['"', "\\", "\b\t\n\f\r", "\x00\x01\x1f\x7f", "/", "é", "\u2028", "\U0001f600", "\ufeff"])
TEXT = st.one_of(st.text(max_size=20), TRICKY_TEXT, st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=20))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER), TEXT
)
JSON_DATA = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, JSON_DATA, max_size=6))
def test_it_writes_the_rfc8785_bytes_for_any_json_safe_body(body):
    body = json_safe(body)
    assert _canonical(body) == rfc8785.dumps(body)


def test_it_writes_the_rfc8785_bytes_for_an_event_body():
    body = json_safe(
        {
            "id": "0b9f5a3e-8d1c-4c39-9a57-3f1b1c1f2e0a",
            "seq": 12,
            "type": "adapter.upload",
            "after": {"ref": "acme/bot:v1", "parent": None, "status": "received", "count": 2**53 - 1},
            "evidence": {"files": [{"path": "adapter_config.json", "size": 800}], "note": 'a "quoted"\tline\n'},
            "reason": "",
        }
    )
    assert _canonical(body) == rfc8785.dumps(body)
