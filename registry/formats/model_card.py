"""Model cards: the README.md that peft's save_pretrained (and the Hub) put next to a model.

A card is informational, never a reason to refuse an upload: whatever is wrong with
it (front matter that is not YAML, not a mapping, too big, too deep, tagged with
`!!python/...`) becomes a warning shown with the card.

Front matter is read the way huggingface_hub's `metadata_load` reads it: a leading
`---` line, YAML, a closing `---` line (the same regular expression), loaded with
`yaml.safe_load`; anything but a mapping is ignored. Only the fields the Hub's model
card metadata defines and the page shows are kept, with their types checked:
`base_model` and `datasets` and `tags` (a string or a list of strings, stored as a
list), `base_model_relation`, `license`, `library_name` (strings).

The body is rendered as CommonMark (plus tables) by markdown-it-py with raw HTML
disabled, so `<script>` and friends appear as text, then sanitised by nh3 (Ammonia)
with an explicit allow-list of tags and attributes: no raw HTML, event handler or
style attribute survives, links keep only http/https/mailto URLs and carry
`rel="nofollow noopener"`. Images are rendered as links to the image: a card's
remote image would tell a third party who reads the page (and the Content-Security-
Policy only allows same-origin images anyway). HTML comments, which peft's card
template is full of, are dropped before rendering, as the Hub hides them.

Registered base versus the card's `base_model`: the registry knows a base as
`namespace/name:vN`; peft writes whatever the model was loaded from, a Hub id
(`meta-llama/Llama-3.2-1B`) or a local path (`/models/llama`). A card's base
matches when, compared case-insensitively and without trailing slashes, it is the
registered `namespace/name`, or its last path component is the registered name.
Any other value in `base_model` is reported in `card_warnings`.
"""

import re
from dataclasses import dataclass, field

import nh3
import yaml
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from registry.formats.strict_json import UNSTORABLE

MAX_CARD_BYTES = 256 * 1024  # of README.md rendered; the rest is cut off (and said so)
MAX_FRONT_MATTER_BYTES = 16 * 1024
MAX_RENDERED_BYTES = 1024 * 1024  # markdown can amplify (one long reference link used many times)
MAX_LIST_ITEMS = 64
MAX_VALUE_LENGTH = 256
MARKDOWN_NESTING = 20

# huggingface_hub/repocard.py REGEX_YAML_BLOCK, so a card means here what it means on the Hub.
FRONT_MATTER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
STRING_FIELDS = ("base_model_relation", "license", "library_name")
LIST_FIELDS = ("base_model", "datasets", "tags")

ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "pre", "code",
    "em", "strong", "s", "del", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


@dataclass
class ModelCard:
    fields: dict = field(default_factory=dict)
    html: str = ""
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)

    def stored(self, extra_warnings: list[str] = ()) -> dict:
        """The JSON kept on the version row, so a page view reads no blob."""
        return {
            "fields": self.fields,
            "html": self.html,
            "truncated": self.truncated,
            "warnings": [*self.warnings, *extra_warnings],
        }


def read_card(data: bytes) -> ModelCard:
    """Parse and render a README.md; never raises for what the card contains."""
    truncated = len(data) > MAX_CARD_BYTES
    text = data[:MAX_CARD_BYTES].decode("utf-8", errors="ignore")
    card = ModelCard(truncated=truncated)
    body = _split_front_matter(text, card)
    card.html = render_markdown(body, card)
    return card


def _split_front_matter(text: str, card: ModelCard) -> str:
    match = FRONT_MATTER.search(text)
    if match is None:
        return text
    block = match.group(2)
    if len(block.encode()) > MAX_FRONT_MATTER_BYTES:
        card.warnings.append(f"front matter is over {MAX_FRONT_MATTER_BYTES // 1024} KiB; it was ignored")
    else:
        card.fields = _metadata(block, card.warnings)
    return text[match.end() :]


def _metadata(block: str, warnings: list[str]) -> dict:
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", "") or exc.__class__.__name__)
        warnings.append(f"front matter is not valid YAML ({problem[:120]}); it was ignored")
        return {}
    except RecursionError:
        warnings.append("front matter is nested too deeply; it was ignored")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        warnings.append(f"front matter is a YAML {type(data).__name__}, not a mapping; it was ignored")
        return {}
    fields = {}
    for key in LIST_FIELDS + STRING_FIELDS:
        if key in data and data[key] is not None:
            value = _checked(data[key], as_list=key in LIST_FIELDS)
            if value is None:
                warnings.append(f"front matter field {key!r} is not {_expected(key)}; it was ignored")
            else:
                fields[key] = value
    return fields


def _expected(key: str) -> str:
    return "a string or a list of strings" if key in LIST_FIELDS else "a string"


def _storable(value: object) -> bool:
    # A YAML "\ud800" escape makes a lone surrogate, and "\0" a NUL: PostgreSQL's JSON holds neither.
    return isinstance(value, str) and len(value) <= MAX_VALUE_LENGTH and not UNSTORABLE.search(value)


def _checked(value: object, *, as_list: bool) -> str | list[str] | None:
    if not as_list:
        return value if _storable(value) else None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_LIST_ITEMS or not all(_storable(i) for i in items):
        return None
    return list(items)


def base_model_warnings(fields: dict, *, namespace: str, name: str) -> list[str]:
    """A warning for each `base_model` of the card that is not the registered base (rule above)."""
    registered = f"{namespace}/{name}"
    return [
        f"the model card names base model {named!r}, but this version is registered on {registered}"
        for named in fields.get("base_model", [])
        if not _same_base(named, namespace=namespace, name=name)
    ]


def _same_base(named: str, *, namespace: str, name: str) -> bool:
    named = named.strip().rstrip("/\\").lower()
    last = re.split(r"[/\\]", named)[-1]
    return named == f"{namespace}/{name}".lower() or last == name.lower()


# --- Rendering --------------------------------------------------------------------------


def _without_comments(text: str) -> str:
    """Drop `<!-- ... -->`; a loop with find() stays linear where a lazy regex would not."""
    parts, position = [], 0
    while (start := text.find("<!--", position)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break
        parts.append(text[position:start])
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def _image_as_link(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escapeHtml(str(token.attrGet("src") or ""))}">{escapeHtml(f"[image: {alt}]")}</a>'


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MARKDOWN_NESTING}).enable("table")
    md.add_render_rule("image", _image_as_link)
    return md


_MARKDOWN = _markdown()


def _output_estimate(tokens) -> int:
    size = 0
    for token in tokens:
        size += len(token.content) + sum(len(str(v)) for v in (token.attrs or {}).values())
        if token.children:
            size += _output_estimate(token.children)
    return size


def render_markdown(body: str, card: ModelCard) -> str:
    """Markdown to sanitised HTML, or "" (with a warning) when the output would be huge."""
    env: dict = {}
    tokens = _MARKDOWN.parse(_without_comments(body), env)
    if _output_estimate(tokens) > MAX_RENDERED_BYTES:
        card.warnings.append(f"the card would render to over {MAX_RENDERED_BYTES // 1024} KiB of HTML; not shown")
        return ""
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, env)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative="deny",
        link_rel="nofollow noopener",
        strip_comments=True,
    )
