"""Named corpora: the Brown corpus turned back into plain text, split and written
once; a missing set-up step named in the error."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from saelens_aligned.pipeline.corpora import (
    BROWN_EVAL_EVERY,
    brown_corpus,
    brown_plain_text,
    brown_tarball,
)
from saelens_aligned.pipeline.text import DatasetResolutionError, resolve_corpus

TAGGED = (
    "\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd ``/`` "
    "no/at evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n"
    "\n\n\tIt/pps did/dod n't/* say/vb (/( why/wrb )/) ,/, and/cc Atlanta's/np$ "
    "mayor/nn agreed/vbd ;/. 50/cd %/nn of/in it/ppo was/bedz fine/jj ./.\n"
)


def test_brown_tags_are_stripped_and_punctuation_reattached():
    assert brown_plain_text(TAGGED) == (
        'The Fulton County Grand Jury said "no evidence" that any irregularities '
        "took place.\n\n"
        "It didn't say (why), and Atlanta's mayor agreed; 50% of it was fine."
    )


def write_brown_tarball(path: Path, n_documents: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for i in range(n_documents):
            name = f"package/c{'abc'[i % 3]}{i:02d}"
            data = f"\n\n\tDocument/nn {i}/cd here/rb ./.\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        readme = b"BROWN CORPUS"
        info = tarfile.TarInfo("package/README")
        info.size = len(readme)
        archive.addfile(info, io.BytesIO(readme))


def test_brown_corpus_holds_out_one_document_in_five_and_is_written_once(tmp_path):
    write_brown_tarball(brown_tarball(tmp_path), 20)
    corpus = brown_corpus(tmp_path)
    train = [
        json.loads(line)["text"]
        for line in Path(corpus.train[0]).read_text().splitlines()
    ]
    held_out = [
        json.loads(line)["text"]
        for line in Path(corpus.eval[0]).read_text().splitlines()
    ]
    assert len(held_out) == 20 // BROWN_EVAL_EVERY and len(train) == 16
    assert not set(train) & set(held_out)
    assert all(t.startswith("Document ") and t.endswith("here.") for t in train)
    # Written once: the tarball is no longer needed to resolve it.
    brown_tarball(tmp_path).unlink()
    assert resolve_corpus("brown", tmp_path) == corpus


def test_missing_brown_corpus_names_the_set_up_step(tmp_path):
    with pytest.raises(DatasetResolutionError, match="make corpora"):
        resolve_corpus("brown", tmp_path)
