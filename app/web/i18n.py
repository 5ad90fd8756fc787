"""Translations for the pages: gettext catalogues (``app/web/locales/<lang>/LC_MESSAGES/messages.po``).

Catalogues are read with Babel when the app starts (the ``.po`` files are the source and the only copy;
there is no compile step). Templates translate with ``{% trans %}`` / ``_()``, picked per page from the
``lang`` in the template's context. Page scripts call ``t("English text")`` (``static/js/i18n.js``); the
page hands them the language's catalogue as one JSON block (``script_strings``), so the same ``.po``
file serves templates and scripts, and ``pybabel extract`` finds both.

Refresh the catalogues after changing strings:
    .venv/bin/pybabel extract -F app/web/babel.cfg -k t \\
        --ignore-dirs=".venv var node_modules .git test-artifacts" -o app/web/locales/messages.pot .
    .venv/bin/pybabel update -i app/web/locales/messages.pot -d app/web/locales
"""

from __future__ import annotations

import gettext as gettext_module
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import pass_context
from jinja2.runtime import Context

LOCALES_DIR: Final = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE: Final = "en"
# Language code -> its own name, as the switcher shows it.
LANGUAGES: Final[dict[str, str]] = {"en": "English", "hi": "हिन्दी"}


@cache
def translations(language: str) -> gettext_module.NullTranslations:
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return NullTranslations()
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    loaded = Translations()
    entries: dict[Any, Any] = loaded._catalog
    for message in catalog:
        if message.id and message.string and not message.fuzzy:
            if isinstance(message.id, tuple):
                for index, text in enumerate(message.string):
                    entries[(message.id[0], index)] = text
            else:
                entries[message.id] = message.string
    return loaded


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice if it is a language we have; else the first of Accept-Language we have."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def _language(context: Context) -> str:
    language = context.get("lang")
    return language if isinstance(language, str) else DEFAULT_LANGUAGE


@pass_context
def context_gettext(context: Context, message: str) -> str:
    return translations(_language(context)).gettext(message)


@pass_context
def context_ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(_language(context)).ngettext(singular, plural, n)


def script_strings(language: str) -> Mapping[str, str]:
    """Every translated message of the language (English text -> translation), for page scripts' ``t()``."""
    loaded = translations(language)
    catalog: dict[Any, str] = getattr(loaded, "_catalog", {})
    return {key: text for key, text in catalog.items() if isinstance(key, str) and key}


def install(environment: Any) -> None:
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(context_gettext, context_ngettext, newstyle=True)
