"""Model cards (README.md): front matter read as the Hub reads it, Markdown rendered and
sanitised, warnings instead of refusals, and the fields in the API."""

import shutil
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from registry.formats import model_card
from registry.formats.model_card import base_model_warnings, read_card
from registry.models import AdapterVersion
from tests.helpers import directory_files, upload

BASES = "/api/v1/bases/"
ADAPTERS = "/api/v1/adapters/"


class _Tags(HTMLParser):
    """Every tag and attribute of rendered HTML, as a browser's parser sees them."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def assert_safe(html: str) -> None:
    for tag, attrs in tags_of(html):
        assert tag in model_card.ALLOWED_TAGS, tag
        assert set(attrs) <= {"href", "title", "rel", "start"}, attrs
        if "href" in attrs:
            assert urlsplit(attrs["href"]).scheme in {"http", "https", "mailto"}, attrs
        if tag == "a":
            assert attrs["rel"] == "nofollow noopener"


HOSTILE_BODIES = {
    "script tag": "<script>alert(1)</script>\n\nhello",
    "javascript link": "[click](javascript:alert(1)) and [again](JaVaScRiPt:alert(1)) <javascript:alert(1)>",
    "on attribute": '<img src=x onerror="alert(1)"> <a href="https://e.example" onclick="alert(1)">x</a>',
    "raw html block": "<div>\n<iframe src='https://evil.example'></iframe>\n<style>body{display:none}</style>\n</div>",
    "data uri": "[x](data:text/html;base64,PHNjcmlwdD4=) ![y](data:image/svg+xml;base64,PHN2Zz4=)",
    "vbscript and file": "[a](vbscript:msgbox) [b](file:///etc/passwd)",
    "html in link title": '[t](https://e.example "<script>x</script>") `<script>in code</script>`',
    "svg in image alt": "![<svg onload=alert(1)>](https://e.example/i.png)",
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_it_lets_no_markup_or_script_url_through(body):
    card = read_card(body.encode())
    assert_safe(card.html)
    # What is left of the input is text: escaped, never a tag, an attribute or a link target.
    assert "<script" not in card.html and "<iframe" not in card.html and "<style" not in card.html


def test_it_shows_raw_html_as_text_not_markup():
    card = read_card(b"<b onclick=x>bold?</b>\n\n<script>alert(1)</script>")
    assert "&lt;b onclick=x&gt;" in card.html
    assert [tag for tag, _ in tags_of(card.html)] == ["p", "p"]


def test_it_keeps_safe_links_with_nofollow_and_turns_images_into_links():
    card = read_card(b"[docs](https://docs.example/x) [mail](mailto:a@b.example) ![chart](https://img.example/c.png)")
    links = [attrs for tag, attrs in tags_of(card.html) if tag == "a"]
    assert [link["href"] for link in links] == [
        "https://docs.example/x",
        "mailto:a@b.example",
        "https://img.example/c.png",
    ]
    assert all(link["rel"] == "nofollow noopener" for link in links)
    assert "[image: chart]" in card.html and "<img" not in card.html


def test_it_drops_html_comments_the_peft_template_is_full_of():
    card = read_card(b"# Title\n\n<!-- Provide a quick summary -->\n\ntext <!-- unclosed")
    assert "Provide a quick summary" not in card.html
    assert "unclosed" in card.html  # an unclosed comment is text, as CommonMark with html off shows it


def test_it_renders_tables_without_style_attributes():
    card = read_card(b"| a | b |\n|--:|:--|\n| 1 | 2 |\n")
    assert "<table>" in card.html and "style" not in card.html


def test_it_truncates_a_huge_card_and_says_so():
    card = read_card(b"# big\n\n" + b"word " * 100_000)
    assert card.truncated
    assert len(card.html) < 2 * model_card.MAX_CARD_BYTES


def test_it_refuses_to_render_markdown_that_amplifies():
    url = "https://e.example/" + "a" * 2000
    data = f"[r]: {url}\n\n".encode() + b"[r] " * 60_000
    card = read_card(data)
    assert card.html == ""
    assert any("would render to over" in w for w in card.warnings)


def test_it_reads_front_matter_fields_as_the_hub_does():
    card = read_card(
        b"---\nbase_model: meta-llama/Llama-3.2-1B\nbase_model_relation: adapter\nlicense: apache-2.0\n"
        b"datasets: [tatsu-lab/alpaca]\ntags: lora\nlibrary_name: peft\nignored: 1\n---\n# Body\n"
    )
    assert card.fields == {
        "base_model": ["meta-llama/Llama-3.2-1B"],
        "datasets": ["tatsu-lab/alpaca"],
        "tags": ["lora"],
        "base_model_relation": "adapter",
        "license": "apache-2.0",
        "library_name": "peft",
    }
    assert card.warnings == [] and card.html == "<h1>Body</h1>\n"


HOSTILE_FRONT_MATTER = {
    "python tag": (b"base_model: !!python/object/apply:os.system ['touch /tmp/pwned']", "not valid YAML"),
    "python name": (b"license: !!python/name:os.system", "not valid YAML"),
    "broken yaml": (b"base_model: [unclosed", "not valid YAML"),
    "deep yaml": (b"x: " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    "a list": (b"- a\n- b", "not a mapping"),
    "a string": (b"just text", "not a mapping"),
    "huge": (b"tags:\n" + b"- t\n" * 6000, "over 16 KiB"),
    "wrong types": (b"license: {a: 1}\ntags: [1, 2]\nbase_model: 2024-01-01", "is not a string"),
    "NUL and surrogate": (b'license: "a\\0b"\nbase_model: "\\ud800"', "is not a string"),
}


@pytest.mark.parametrize("front, expected", HOSTILE_FRONT_MATTER.values(), ids=HOSTILE_FRONT_MATTER.keys())
def test_broken_front_matter_is_a_warning_not_an_error(front, expected, tmp_path):
    card = read_card(b"---\n" + front + b"\n---\n# Still rendered\n")
    assert any(expected in warning for warning in card.warnings), card.warnings
    assert card.fields == {}
    assert "<h1>Still rendered</h1>" in card.html
    assert not (tmp_path / "pwned").exists()


def test_it_reads_the_card_peft_writes(zoo):
    card = read_card((zoo.adapters["attention"] / "README.md").read_bytes())
    assert card.fields["library_name"] == "peft"
    assert card.fields["base_model"] == [str(zoo.llama)]  # peft records the path it loaded the base from
    assert "lora" in card.fields["tags"]
    assert card.warnings == []
    assert "<h2>Model Details</h2>" in card.html
    assert "Provide a quick summary" not in card.html
    assert_safe(card.html)


@pytest.mark.parametrize(
    "named, warns",
    [
        ("/models/llama", False),
        ("/models/llama/", False),
        ("acme/llama", False),
        ("ACME/Llama", False),
        ("meta-llama/Llama-3.2-1B", True),
        ("/models/mistral", True),
        ("acme/llama-2", True),
    ],
)
def test_base_model_matches_the_registered_name_or_path_tail(named, warns):
    warnings = base_model_warnings({"base_model": [named]}, namespace="acme", name="llama")
    assert bool(warnings) is warns
    if warns:
        assert named in warnings[0] and "acme/llama" in warnings[0]


# --- Through the API ----------------------------------------------------------------------------


def _push(client, directory, url, **fields):
    response = upload(client, url, fields, directory_files(directory))
    assert response.status_code == 201, response.content
    return response.json()


def test_the_api_shows_card_fields_and_no_warning_when_the_base_matches(alice_client, zoo):
    base = _push(alice_client, zoo.llama, BASES, name="acme/llama")
    body = _push(alice_client, zoo.adapters["attention"], ADAPTERS, name="acme/bot", base=base["ref"])
    assert body["card"]["library_name"] == "peft"
    assert body["card"]["base_model"] == [str(zoo.llama)]
    assert body["card"]["license"] is None and body["card"]["datasets"] == []
    assert body["card_warnings"] == []
    again = alice_client.get(f"{ADAPTERS}{body['ref']}")
    assert again.json()["card"] == body["card"]


def test_the_api_warns_when_the_card_names_another_base(alice_client, zoo):
    base = _push(alice_client, zoo.llama, BASES, name="acme/mistral")
    body = _push(alice_client, zoo.adapters["attention"], ADAPTERS, name="acme/bot", base=base["ref"])
    assert body["card_warnings"] == [
        f"the model card names base model {str(zoo.llama)!r}, but this version is registered on acme/mistral"
    ]
    assert "card_warnings" not in alice_client.get(ADAPTERS).json()["results"][0]  # detail only


def test_a_broken_card_is_accepted_with_a_warning(alice_client, zoo, tmp_path):
    base = _push(alice_client, zoo.llama, BASES, name="acme/llama")
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    (adapter / "README.md").write_bytes(b"---\nbase_model: !!python/object:os.system\n---\n<script>x</script>")
    body = _push(alice_client, adapter, ADAPTERS, name="acme/bot", base=base["ref"])
    assert body["card"]["base_model"] == []
    assert "not valid YAML" in body["card_warnings"][0]
    stored = AdapterVersion.objects.get(id=body["id"]).card
    assert "<script" not in stored["html"]


def test_a_version_without_a_card_has_none(alice_client, zoo, tmp_path):
    base_dir = tmp_path / "base"
    shutil.copytree(zoo.llama, base_dir)
    (base_dir / "README.md").unlink(missing_ok=True)
    base = _push(alice_client, base_dir, BASES, name="acme/llama")
    assert base["card"] is None and base["card_warnings"] == []
    adapter = zoo.copy("adapter-attention", tmp_path / "adapter")
    (adapter / "README.md").unlink()
    body = _push(alice_client, adapter, ADAPTERS, name="acme/bot", base=base["ref"])
    assert body["card"] is None and body["card_warnings"] == []


def test_a_base_card_is_read_without_a_base_comparison(alice_client, zoo, tmp_path):
    base_dir = tmp_path / "base"
    shutil.copytree(zoo.llama, base_dir)
    (base_dir / "README.md").write_text("---\nbase_model: someone/else\nlicense: mit\n---\n# A base\n")
    base = _push(alice_client, base_dir, BASES, name="acme/llama")
    assert base["card"]["license"] == "mit" and base["card"]["base_model"] == ["someone/else"]
    assert base["card_warnings"] == []
