"""The Hindi catalogue is complete: every string the pages use is in it, translated, not fuzzy, and
with the same ``{placeholders}`` as the English text (``t()`` in static/js/i18n.js and the templates
fill them by name, so a changed or missing one shows the raw ``{name}`` or drops a value).

The page strings are extracted afresh with Babel's own extractor and app/web/babel.cfg, the same as
``pybabel extract`` in docs/consoles.md. Babel's JavaScript extractor can miss a call (a ``t()`` whose
own arguments hold a template literal); the scripts' plain ``t("literal")`` calls are therefore also read
straight from the source, so such a string cannot go untranslated unnoticed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.web.i18n import LOCALES_DIR

ROOT = Path(__file__).resolve().parents[1]
BABEL_CFG = ROOT / "app" / "web" / "babel.cfg"
SCRIPTS = ROOT / "app" / "web" / "static" / "js"
HINDI = LOCALES_DIR / "hi" / "LC_MESSAGES" / "messages.po"
# As `pybabel extract -k t --ignore-dirs=...` in docs/consoles.md.
KEYWORDS = {**DEFAULT_KEYWORDS, "t": None}
IGNORED_DIRS = {".venv", "var", "node_modules", ".git", "test-artifacts"}

PLACEHOLDER = re.compile(r"\{(\w+)\}|%\((\w+)\)[sd]")
# t("…") / t('…') with a plain string literal as its first argument, not x.t( or at(.
SCRIPT_CALL = re.compile(r"""(?<![\w.$])t\(\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")


def _keep_dir(path: str) -> bool:
    name = Path(path).name
    return name not in IGNORED_DIRS and not name.startswith((".", "__"))


@cache
def extracted() -> dict[str, str]:
    """Message id -> where it is used, as Babel extracts them with app/web/babel.cfg."""
    with BABEL_CFG.open() as handle:
        method_map, options_map = parse_mapping_cfg(handle, str(BABEL_CFG))
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS, directory_filter=_keep_dir
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def script_literals() -> Iterator[tuple[str, str]]:
    """Every ``t("literal")`` in the page scripts (id, where), read from the source text."""
    for path in sorted(SCRIPTS.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for match in SCRIPT_CALL.finditer(text):
            # JS and Python agree on the escapes the scripts use (\" \' \\ \n \uXXXX).
            literal = ast.literal_eval(match.group(1))
            assert isinstance(literal, str)
            line = text.count("\n", 0, match.start()) + 1
            yield literal, f"{path.relative_to(ROOT)}:{line}"


def hindi() -> Catalog:
    with HINDI.open("rb") as handle:
        return read_po(handle, locale="hi", abort_invalid=True)


def entries(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def texts(value: object) -> tuple[str, ...]:
    """A message's id or string as its forms (one, or singular and plural)."""
    if isinstance(value, str):
        return (value,)
    assert isinstance(value, (tuple, list))
    return tuple(str(text) for text in value)


def placeholders(text: str) -> set[str]:
    return {brace or percent for brace, percent in PLACEHOLDER.findall(text)}


def test_babel_finds_the_pages_strings() -> None:
    found = extracted()
    # One from a template, one from a script: the extraction itself works.
    assert "Gate console" in found
    assert "Live" in found
    assert len(found) > 400


def test_every_string_the_pages_use_is_in_the_hindi_catalogue() -> None:
    catalog = hindi()
    ids = {texts(message.id)[0] for message in entries(catalog)}
    used = dict(extracted())
    for literal, where in script_literals():
        used.setdefault(literal, where)
    missing = {msgid: where for msgid, where in used.items() if msgid not in ids}
    assert missing == {}, (
        "not in the Hindi catalogue: run the extract and update commands in docs/consoles.md; a string "
        "they still miss is one Babel's extractor does not see (see this file's docstring)"
    )


def test_every_hindi_entry_is_translated_and_not_fuzzy() -> None:
    catalog = hindi()
    assert entries(catalog)
    untranslated = [texts(message.id)[0] for message in entries(catalog) if not all(texts(message.string))]
    fuzzy = [texts(message.id)[0] for message in entries(catalog) if message.fuzzy]
    assert untranslated == []
    assert fuzzy == []


def test_every_hindi_translation_keeps_the_placeholders_of_its_english_text() -> None:
    wrong: dict[str, tuple[set[str], list[set[str]]]] = {}
    for message in entries(hindi()):
        ids = texts(message.id)
        strings = texts(message.string)
        wanted = set().union(*(placeholders(text) for text in ids))
        got = [placeholders(text) for text in strings if text]
        if any(names != wanted for names in got):
            wrong[ids[0]] = (wanted, got)
    assert wrong == {}
