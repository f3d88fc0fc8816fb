"""Text from the store shown as text, in elements that Streamlit renders as Markdown.

Run names, manifest questions, conditions, paths and exception messages come from users.
Streamlit escapes HTML but renders Markdown (links, images, emphasis, code), GitHub's
extensions (tables, bare URLs become links) and its own (`:red[...]`, `:material/icon:`,
emoji shortcodes, `$LaTeX$`) in st.markdown, st.caption, headings, alerts, metric labels
and values, widget labels, radio options, expander and tab labels, button labels and image
captions (seen in a browser with Streamlit 1.67). Selectbox and multiselect options,
st.text, st.code, st.json and st.dataframe cells are plain text; those need nothing.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and every
# construct of GFM, KaTeX and Streamlit's directives starts with or needs one of them.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Line breaks and other control characters would start new blocks (headings, lists,
# tables, code); runs of them, and of other whitespace, become one space.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# GFM links bare URLs and e-mail addresses after parsing, in the text itself, so escaping
# cannot stop it; an invisible WORD JOINER inside `http:`, `www.` and after `@` does.
_AUTOLINK = re.compile(r"(?i)(?<=http)(?=s?:)|(?<=www)(?=\.)|(?<=@)(?=[\w-])")
WORD_JOINER = "\u2060"


def escape_markdown(text: object) -> str:
    """`text` (str() of anything) as one line that Streamlit's Markdown shows literally."""
    flat = _BREAKS.sub(" ", str(text)).strip()
    flat = _AUTOLINK.sub(WORD_JOINER, flat)
    return _PUNCTUATION.sub(r"\\\1", flat)


def shorten(text: object, limit: int = 120) -> str:
    """str(text), cut to `limit` characters with an ellipsis (for values echoed from a URL)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
