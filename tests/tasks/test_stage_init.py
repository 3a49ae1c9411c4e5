import os

import pytest
import torch
from safetensors.torch import save_file

from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.checkpoints import load_block_weights
from xrg.data.errors import CheckpointError
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import ReportGeneration, StageInit


def _task(**kw) -> ReportGeneration:
    decoder = TransformerDecoder(WordTokenizer(1, words=["a", "b"]), dim=16, heads=2, ffn_dim=16,
                                 encoder_layers=1, decoder_layers=1)
    return ReportGeneration(TimmImageEncoder("test_resnet"), decoder, nlg_metrics=False,
                            clinical_efficacy=False, **kw)


def _lightning_checkpoint(task, path):
    torch.save({"state_dict": task.state_dict()}, path)
    return path


def test_stage_init_copies_named_blocks_and_leaves_the_rest(tmp_path):
    torch.manual_seed(0)
    stage1 = _task()
    path = _lightning_checkpoint(stage1, tmp_path / "stage1.ckpt")
    torch.manual_seed(1)
    stage2 = _task(init_from=StageInit(str(path), {"image_encoder": "image_encoder"}))
    stage2.load_stage_init(stage2.init_from)
    for (name, a), b in zip(stage1.image_encoder.state_dict().items(), stage2.image_encoder.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(stage1.decoder.head.weight, stage2.decoder.head.weight)


def test_a_run_folder_gives_its_newest_last_checkpoint(tmp_path):
    """`init_from.checkpoint: runs/stage1` starts from the stage's newest last.ckpt under it (not
    from a newer best-epoch pick beside it)."""
    older, newer, best = _task(), _task(), _task()
    for version, task in enumerate((older, newer)):
        folder = tmp_path / "stage1" / "lightning_logs" / f"version_{version}" / "checkpoints"
        folder.mkdir(parents=True)
        os.utime(_lightning_checkpoint(task, folder / "last.ckpt"), (1000 + version, 1000 + version))
    _lightning_checkpoint(best, folder / "best-epoch=3.ckpt")  # the newest file of all
    stage2 = _task(init_from=StageInit(str(tmp_path / "stage1"), {"image_encoder": "image_encoder"}))
    stage2.load_stage_init(stage2.init_from)
    assert all(torch.equal(a, b) for a, b in zip(newer.image_encoder.state_dict().values(),
                                                 stage2.image_encoder.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(older.image_encoder.state_dict().values(),
                                                     stage2.image_encoder.state_dict().values()))


def test_decoder_vocabulary_comes_with_its_weights(tmp_path):
    stage1 = _task()
    path = _lightning_checkpoint(stage1, tmp_path / "stage1.ckpt")
    fresh = TransformerDecoder(dim=16, heads=2, ffn_dim=16, encoder_layers=1, decoder_layers=1, memory_dim=96)
    load_block_weights(fresh, path, "decoder")
    assert fresh.tokenizer == stage1.decoder.tokenizer
    assert torch.equal(fresh.head.weight, stage1.decoder.head.weight)


def test_safetensors_files_load_too(tmp_path):
    encoder = TimmImageEncoder("test_resnet")
    save_file({f"image_encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    other = TimmImageEncoder("test_resnet")
    load_block_weights(other, tmp_path / "w.safetensors", "image_encoder")
    assert all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), other.state_dict().values()))


def test_wrong_prefix_and_missing_file_are_clear(tmp_path):
    path = _lightning_checkpoint(_task(), tmp_path / "stage1.ckpt")
    with pytest.raises(CheckpointError, match="no weights under 'encoder.'.*image_encoder"):
        load_block_weights(TimmImageEncoder("test_resnet"), path, "encoder")
    with pytest.raises(CheckpointError, match="nope.ckpt does not exist"):
        load_block_weights(TimmImageEncoder("test_resnet"), tmp_path / "nope.ckpt", "image_encoder")
    task = _task(init_from=StageInit(str(path), {"text_encoder": "x"}))
    with pytest.raises(ValueError, match="text_encoder"):
        task.load_stage_init(task.init_from)


def test_block_learning_rates_form_parameter_groups():
    task = _task(block_lr={"image_encoder": 1e-5})
    groups = task.parameter_groups()
    assert groups[1]["lr"] == 1e-5
    assert sum(p.numel() for p in groups[1]["params"]) == sum(p.numel() for p in task.image_encoder.parameters())
    assert sum(len(g["params"]) for g in groups) == len(list(task.parameters()))
