"""Generated blocks: the parts of a markdown document that a command renders
from records, between `<!-- generated: NAME begin -->` and `<!-- generated: NAME
end -->`; everything outside the markers is prose and stays as written.
`benchmarks.reports.published` lists the documents and what renders each block.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Block:
    """A generated block: its marker name and what renders it."""

    name: str
    render: Callable[[], str]


def marked(name: str, content: str) -> str:
    """`content` between the markers of block `name`, as `fill` writes it."""
    return (
        f"<!-- generated: {name} begin -->\n{content.strip(chr(10))}\n"
        f"<!-- generated: {name} end -->"
    )


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} begin -->)(.*?)(<!-- generated: "
        rf"{re.escape(name)} end -->)",
        re.DOTALL,
    )


def fill(text: str, blocks: tuple[Block, ...], path: Path) -> str:
    """`text` with every block's content rendered anew; a missing marker is an
    error naming the block and the file."""
    for block in blocks:
        pattern = _pattern(block.name)
        if not pattern.search(text):
            raise ValueError(
                f"{path}: no '<!-- generated: {block.name} begin/end -->' markers; "
                "add them where the block belongs."
            )
        content = "\n" + block.render().strip("\n") + "\n"
        text = pattern.sub(lambda m: m[1] + content + m[3], text, count=1)
    return text


def stale_documents(
    documents: dict[Path, tuple[Block, ...]],
) -> list[Path]:
    """The documents whose committed text differs from the records' rendering."""
    return [
        path
        for path, blocks in documents.items()
        if fill(path.read_text(), blocks, path) != path.read_text()
    ]
