// Translations for page scripts: the page hands over its language's catalogue (English -> translation)
// in <script type="application/json" id="i18n-strings">, rendered from the same .po files as the templates.
const node = document.getElementById("i18n-strings");
const strings = node ? JSON.parse(node.textContent || "{}") : {};

/** The translation of an English message; `{name}` placeholders are filled from `vars`. */
export function t(message, vars) {
  let text = strings[message] || message;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}
