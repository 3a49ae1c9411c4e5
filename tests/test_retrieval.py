"""ReportIndex / ReportRetriever: exact neighbours, the query's own study excluded, files round-trip."""

from __future__ import annotations

import json

import pytest
import torch

from xrg.blocks.retrieval import ReportIndex, ReportRetriever
from xrg.blocks.retrieval.index import faiss_available
from xrg.data.errors import DataError


def _corpus(n: int = 300, dim: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, dim, generator=generator)
    ids = [f"s{i}" for i in range(n)]
    return embeddings, ids, [f"report {i}" for i in range(n)]


def _reference_neighbours(embeddings, queries, k, exclude_rows):
    """Brute force by sorting every cosine similarity, the definition the index must match."""
    keys = torch.nn.functional.normalize(embeddings, dim=-1)
    scores = torch.nn.functional.normalize(queries, dim=-1) @ keys.T
    result = []
    for i, row in enumerate(exclude_rows):
        order = [j for j in scores[i].argsort(descending=True).tolist() if j != row]
        result.append(order[:k])
    return result


def test_exact_search_matches_brute_force_and_excludes_own_study():
    embeddings, ids, reports = _corpus()
    index = ReportIndex(embeddings, ids, reports, backend="torch")
    queries = embeddings[:20] + 0.01 * torch.randn(20, embeddings.shape[1])
    found = index.search(queries, k=5, exclude=ids[:20])
    assert found.indices.tolist() == _reference_neighbours(embeddings, queries, 5, range(20))
    assert all(i not in row for i, row in enumerate(found.indices.tolist()))
    # Without exclusion the nearest neighbour of a perturbed copy is the study itself.
    assert index.search(queries, k=1).indices[:, 0].tolist() == list(range(20))


def test_retriever_index_round_trips_with_identical_neighbours(tmp_path):
    embeddings, ids, reports = _corpus()
    retriever = ReportRetriever(space="image", k=4, backend="torch")
    retriever.build(ids, reports, image_keys=embeddings)
    queries = torch.randn(10, embeddings.shape[1])
    before = retriever(queries, exclude_ids=ids[:10])
    retriever.save_index(tmp_path / "index")

    reloaded = ReportRetriever(space="image", k=4, backend="torch")
    reloaded.load_index(tmp_path / "index")
    after = reloaded(queries, exclude_ids=ids[:10])
    assert after.ids == before.ids and after.reports == before.reports
    assert torch.equal(after.scores, before.scores)
    assert torch.equal(reloaded.index.embeddings, retriever.index.embeddings)


def test_loading_a_text_index_into_an_image_retriever_is_refused(tmp_path):
    embeddings, ids, reports = _corpus(20)
    ReportRetriever(space="image", backend="torch").build(ids, reports, embeddings).save(tmp_path / "i")
    retriever = ReportRetriever(space="text", text_encoder=torch.nn.Identity(), backend="torch")
    with pytest.raises(ValueError, match="index was built by"):
        retriever.load_index(tmp_path / "i")


def test_broken_index_files_raise_data_error_naming_the_file(tmp_path):
    embeddings, ids, reports = _corpus(20)
    ReportIndex(embeddings, ids, reports).save(tmp_path / "i")
    record = json.loads((tmp_path / "i" / "index.json").read_text())
    record["ids"] = record["ids"][:-1]
    record["reports"] = record["reports"][:-1]
    (tmp_path / "i" / "index.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="embeddings.safetensors"):
        ReportIndex.load(tmp_path / "i")
    (tmp_path / "i" / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="index.json: invalid JSON"):
        ReportIndex.load(tmp_path / "i")


def test_duplicate_ids_and_mismatched_lengths_are_rejected():
    embeddings, ids, reports = _corpus(5)
    with pytest.raises(ValueError, match="unique"):
        ReportIndex(embeddings, ["a"] * 5, reports)
    with pytest.raises(ValueError, match="one id and one report"):
        ReportIndex(embeddings, ids[:4], reports)


def test_text_space_retriever_finds_the_report_with_the_same_words(tmp_path):
    from xrg.blocks.encoders.hf_text import HFTextEncoder

    torch.manual_seed(0)
    encoder = HFTextEncoder(config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                    "intermediate_size": 64})
    reports = ["the heart is enlarged .", "small left pleural effusion .", "right pneumothorax is present .",
               "the lungs are clear ."]
    retriever = ReportRetriever(space="text", text_encoder=encoder, k=1, backend="torch")
    retriever.build([f"r{i}" for i in range(4)], reports)
    assert "text_encoder" not in dict(retriever.named_children())  # a tool, not saved weights
    queries = retriever.embed_reports(list(reversed(reports)))
    assert retriever(queries).ids == [["r3"], ["r2"], ["r1"], ["r0"]]


@pytest.mark.skipif(not faiss_available(), reason="faiss is an optional extra")
def test_faiss_flat_gives_the_torch_neighbours():
    embeddings, ids, reports = _corpus(500)
    queries = torch.randn(25, embeddings.shape[1])
    exact = ReportIndex(embeddings, ids, reports, backend="torch").search(queries, 6, exclude=ids[:25])
    fast = ReportIndex(embeddings, ids, reports, backend="faiss").search(queries, 6, exclude=ids[:25])
    assert fast.indices.tolist() == exact.indices.tolist()
    assert torch.allclose(fast.scores, exact.scores, atol=1e-5)


def test_auto_backend_searches_exactly_unless_an_approximate_faiss_index_is_named():
    embeddings, ids, reports = _corpus(100)
    assert ReportIndex(embeddings, ids, reports).backend == "torch"  # Flat: torch is the faster exact search
    approximate = ReportIndex(embeddings, ids, reports, faiss_index="HNSW8")
    assert approximate.backend == ("faiss" if faiss_available() else "torch")
    found = approximate.search(embeddings[:5], 1, exclude=[None] * 5)
    assert found.indices[:, 0].tolist() == [0, 1, 2, 3, 4]  # HNSW still finds an exact duplicate
