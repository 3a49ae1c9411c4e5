import pytest
import torch

from xrg.data.tokenizers import HFTokenizer, Tokenizer, WordTokenizer, tokenizer_from_state


def test_word_vocabulary_applies_threshold_and_round_trips(tmp_path):
    tok = WordTokenizer(threshold=2)
    tok.fit(["the heart is normal .", "the lungs are clear .", "rare word ."])
    assert "rare" not in tok.state_dict()["words"] and "the" in tok.state_dict()["words"]
    ids = tok.encode("the heart is rare")
    assert ids[-1] == tok.unk_id
    assert tok.decode(ids) == "the"  # unknown words and the rest of a non-fitted word drop out
    restored = Tokenizer.load(tok.save(tmp_path).parent)
    assert restored == tok and restored.encode("the lungs .") == tok.encode("the lungs .")


def test_batch_encode_frames_truncates_and_pads():
    tok = WordTokenizer(threshold=1, words=["a", "b", "c"])
    ids = tok.batch_encode(["a b c", "a"], max_length=4)
    assert ids.tolist() == [[tok.bos_id, 4, 5, tok.eos_id], [tok.bos_id, 4, tok.eos_id, tok.pad_id]]
    assert tok.batch_decode(ids) == ["a b", "a"]


def test_unfitted_word_tokenizer_refuses_to_encode():
    with pytest.raises(RuntimeError, match="fit"):
        WordTokenizer().encode("x")


def test_state_must_name_an_xrg_tokenizer():
    with pytest.raises(ValueError, match="xrg tokenizer"):
        tokenizer_from_state({"class_path": "os.system"})


def _tiny_wordpiece(tmp_path):
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = RawTokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    raw.train_from_iterator(["the heart is normal", "no pleural effusion", "the lungs are clear"], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    fast.save_pretrained(tmp_path / "wordpiece")
    return tmp_path / "wordpiece"


def test_hf_tokenizer_loads_local_dir_and_survives_state_round_trip(tmp_path):
    tok = HFTokenizer(str(_tiny_wordpiece(tmp_path)))
    ids = tok.batch_encode(["the heart is normal"], max_length=16)
    assert ids[0, 0].item() == tok.bos_id and tok.eos_id in ids[0].tolist()
    restored = tokenizer_from_state(tok.state_dict())  # no access to the directory needed
    assert torch.equal(restored.batch_encode(["the heart is normal"], 16), ids)
    assert restored.batch_decode(ids) == ["the heart is normal"]
