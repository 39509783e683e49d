"""Plain English prose out of marked-up documentation and book files: pure functions.

Each format's cleaner (HTML, reStructuredText, Perl POD, plain text) removes what a
language model should not learn as "English" from a manual: markup, code and
command listings, tables, navigation, licence headers. `prose_paragraphs` is the
last filter every cleaner applies, so leftovers that survive a format's rules
(a table rendered as lines, a shell transcript, a licence notice) are still
dropped by one shared rule. Paragraphs are separated by one blank line in every cleaner's output.
"""

import html
import re
from html.parser import HTMLParser

MIN_WORDS = 6
"""Shorter paragraphs are mostly headings, menu entries and table cells."""
MIN_LETTER_FRACTION = 0.7
"""Of a paragraph's non-space characters; code, paths and tables fall below."""
CODE_SYMBOLS_PER_WORD = 5
"""A paragraph with more than one code symbol per this many words is code."""
VERSE_MIN_WORDS = 1
"""Plays and poems are kept line by line: a one-word reply is still English."""

_CODEISH = re.compile(r"[{}<>=$\\|]|->|::|\(\)|^\s*(#|//|/\*)", re.MULTILINE)
"""Symbols that mark a line as code (not `;`: verse and prose end lines with it)."""
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


def looks_like_prose(paragraph: str, min_words: int = MIN_WORDS) -> bool:
    """Enough words, mostly letters, and few code-only symbols per word."""
    words = _WORD.findall(paragraph)
    if len(words) < min_words:
        return False
    chars = [c for c in paragraph if not c.isspace()]
    letters = sum(c.isalpha() for c in chars)
    if letters < MIN_LETTER_FRACTION * len(chars):
        return False
    # Code and tables are dense in these symbols; a sentence naming <STDIN> is not.
    return len(_CODEISH.findall(paragraph)) <= len(words) / CODE_SYMBOLS_PER_WORD


_LICENCE_BOILERPLATE = re.compile(
    r"warrant(y|ies) of merchantability|merchantable|without (any )?warranty"
    r"|business interruption|permission is hereby granted|in no event shall"
    r"|above copyright notice|list of conditions|endorse or promote products"
    r"|redistribution and use in source and binary forms|general public license"
    r"|licensed under the|spdx-license-identifier|all rights reserved"
    r"|free documentation license|redistribute it and/or modify"
    # SQLite's blessing, which heads its source files in place of a licence.
    r"|may you share freely|do good and not evil",
    re.IGNORECASE,
)
"""Phrases of licence texts and notices: a paragraph holding one is a licence
header, not the manual's prose, and is also text the code datasets repeat."""


def is_licence_boilerplate(paragraph: str) -> bool:
    return bool(_LICENCE_BOILERPLATE.search(" ".join(paragraph.split())))


_LICENCE_WORDS = re.compile(r"\blicen[cs]e|\bcopyright|\bwarrant", re.IGNORECASE)
LICENCE_TEXT_FRACTION = 0.25
"""A page with at least this fraction of its paragraphs naming a licence,
copyright or warranty is a licence text (the GPL, the GFDL, a README's terms),
whose many notice-free paragraphs the paragraph rule alone would keep."""


def is_licence_text(text: str) -> bool:
    paragraphs = split_paragraphs(text)
    naming = sum(bool(_LICENCE_WORDS.search(p)) for p in paragraphs)
    return bool(paragraphs) and naming >= LICENCE_TEXT_FRACTION * len(paragraphs)


def normalise_paragraph(paragraph: str) -> str:
    """One paragraph on one line, single spaces (hard-wrapped source lines joined)."""
    return " ".join(paragraph.split())


def prose_paragraphs(paragraphs: list[str], min_words: int = MIN_WORDS) -> str:
    """The paragraphs that read as prose and are no licence notice, normalised,
    joined by blank lines."""
    kept = (
        normalise_paragraph(p)
        for p in paragraphs
        if looks_like_prose(p, min_words) and not is_licence_boilerplate(p)
    )
    return "\n\n".join(p for p in kept if p)


def split_paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


# --- HTML ------------------------------------------------------------------

_SKIPPED_TAGS = frozenset({"script", "style", "pre", "table", "nav", "head"})
"""Content never kept. Inline `code` is kept: a sentence that names `fork()`
still reads as English, one with a hole where the name was does not."""
_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "br",
     "blockquote", "section", "article", "ul", "ol", "dl", "tr", "td", "th",
     "title", "header", "footer", "figcaption", "caption", "hr"}
)  # fmt: skip
_INLINE_TAGS = frozenset({"code", "kbd", "samp", "span", "a", "tt", "em", "b", "i"})
_SKIPPED_CLASSES = re.compile(
    r"\b(navheader|navfooter|toc|sphinxsidebar|related|footer|header|breadcrumbs?"
    r"|highlight|literal-block|programlisting|screen|synopsis|legalnotice"
    r"|copyright|headerlink|searchbox|navigation|menu)\b"
)
"""Docbook, Sphinx and hand-written sites' boilerplate: navigation, tables of
contents, code listings, legal notices."""


class _ProseParser(HTMLParser):
    """Collects text outside skipped elements, one paragraph per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip_stack: list[str] = []

    def _flush(self) -> None:
        text = "".join(self._current).strip()
        if text:
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[-1] or tag in _SKIPPED_TAGS:
                self._skip_stack.append(tag)
            return
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id"))
        if tag in _SKIPPED_TAGS or (
            tag not in ("br", "hr") and _SKIPPED_CLASSES.search(classes)
        ):
            # A skipped inline element leaves its sentence whole.
            if tag not in _INLINE_TAGS:
                self._flush()
            self._skip_stack.append(tag)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._skip_stack:
            if tag == self._skip_stack[-1]:
                self._skip_stack.pop()
            return
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip_stack:
            self._current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_prose(page: str) -> str:
    """The prose paragraphs of one HTML page (void or unclosed tags tolerated)."""
    parser = _ProseParser()
    # Void elements never close; skipping them would swallow the rest of the page.
    parser.feed(re.sub(r"<(img|input|meta|link|area|col|wbr)\b[^>]*>", " ", page))
    parser.close()
    return prose_paragraphs(parser.blocks)


# --- reStructuredText (Sphinx sources, e.g. the Linux kernel's documentation) --

_RST_DIRECTIVE = re.compile(r"^\.\.\s")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_:.])\1{2,}\s*$")
_RST_FIELD = re.compile(r"^:[\w -]+:")
_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)(?:\s*<[^>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_{1,2}")


def rst_inline(text: str) -> str:
    """Inline markup to its words: roles (:c:func:`x` -> x), links, emphasis."""
    text = _RST_ROLE.sub(r"\1", text)
    text = _RST_LINK.sub(r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)
    return re.sub(r"(?<!\w)\*\*?([^*\s][^*]*?)\*\*?(?!\w)", r"\1", text)


def rst_prose(source: str) -> str:
    """The prose of one reST file: directives (code-block, toctree, licence
    comments such as `.. SPDX-License-Identifier`) with their indented bodies,
    literal blocks (after `::`), section underlines, field lists and tables go;
    paragraphs and list items stay."""
    kept: list[str] = []
    lines = source.splitlines()
    skip_indent: int | None = None  # inside a directive or literal block
    literal_next = False
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if literal_next and stripped:
            literal_next = False
            if indent > 0 or not kept or kept[-1] == "":
                skip_indent = max(indent - 1, 0)
                continue
        if _RST_DIRECTIVE.match(stripped) or stripped == "..":
            skip_indent = indent
            kept.append("")
            continue
        if (
            _RST_UNDERLINE.match(stripped)
            or _RST_FIELD.match(stripped)
            or stripped.startswith(("+-", "|", "=="))
        ):
            kept.append("")
            continue
        if stripped.endswith("::"):
            literal_next = True
            stripped = stripped[:-1] if not stripped.endswith(" ::") else stripped[:-3]
        kept.append(rst_inline(stripped) if stripped else "")
    return prose_paragraphs(split_paragraphs("\n".join(kept)))


# --- Perl POD --------------------------------------------------------------

_POD_CODES = re.compile(r"[BCEFIJLSXZ]<(?:<+\s+)?([^<>]*?)(?:\s+>+)?>")
_POD_ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}


def pod_inline(text: str) -> str:
    """Formatting codes to their words (B<x> -> x, L<text|target> -> text,
    E<gt> -> >), innermost first."""

    def code(match: re.Match[str]) -> str:
        letter, inner = match.group(0)[0], match.group(1)
        if letter == "E":
            return _POD_ENTITIES.get(inner, html.unescape(f"&{inner};"))
        if letter in "XZ":
            return ""
        if letter == "L":
            return inner.split("|", 1)[0] if "|" in inner else inner.split("/")[-1]
        return inner

    previous = None
    while previous != text:
        previous, text = text, _POD_CODES.sub(code, text)
    return text


def pod_prose(source: str) -> str:
    """The prose of one POD file: ordinary paragraphs only. Verbatim (indented)
    paragraphs are code; command paragraphs (=head1, =item, =for) are headings
    and markers; text outside POD (a .pm file's code) is dropped."""
    kept: list[str] = []
    in_pod = source.lstrip().startswith("=")
    skipping_block = False
    for paragraph in split_paragraphs(source):
        if paragraph.startswith("="):
            command = paragraph.split(None, 1)[0]
            in_pod = command != "=cut"
            if command == "=begin":
                skipping_block = True
            elif command == "=end":
                skipping_block = False
            continue
        if not in_pod or skipping_block or paragraph[:1] in (" ", "\t"):
            continue
        kept.append(pod_inline(paragraph))
    return prose_paragraphs(kept)


# --- Plain text books ------------------------------------------------------

_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF.*$", re.IGNORECASE | re.MULTILINE)
_GUTENBERG_END = re.compile(
    r"^(\*{3}\s*END OF|End of (the )?Project Gutenberg)", re.IGNORECASE | re.MULTILINE
)


def gutenberg_body(text: str) -> str:
    """A Project Gutenberg text without its licence header and footer (between
    the `*** START OF` and `*** END OF` markers, where present)."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text


def verse_prose(text: str) -> str:
    """A play or poem: the body, with each speech or stanza one paragraph and its
    line breaks kept (verse lines are its units); stage directions and speaker
    names are English too, so only non-prose lines (numbers, rules) go."""
    paragraphs = []
    for paragraph in split_paragraphs(gutenberg_body(text).replace("\r\n", "\n")):
        lines = [" ".join(line.split()) for line in paragraph.splitlines()]
        paragraph = "\n".join(line for line in lines if line)
        if looks_like_prose(paragraph, VERSE_MIN_WORDS) and not is_licence_boilerplate(
            paragraph
        ):
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)
