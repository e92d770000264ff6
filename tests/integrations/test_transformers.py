"""Hugging Face Trainer autologging on the real library: a 2-layer GPT-2 built from a config (no
download), trained a few steps on synthetic tokens, with a tokenizer built locally."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from the hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import modelbox_autolog as mbx  # noqa: E402

VOCAB = 64


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(VOCAB - 1)}
    vocab["[UNK]"] = VOCAB - 1
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[UNK]")


def _model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=VOCAB - 1)
    return transformers.GPT2LMHeadModel(config)


class Tokens(torch.utils.data.Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, index):
        ids = torch.randint(0, VOCAB, (16,), generator=torch.Generator().manual_seed(index))
        return {"input_ids": ids, "labels": ids}


def _trainer(tmp_path, trainer_cls=None, **kwargs):
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=6, per_device_train_batch_size=4, logging_steps=2,
        save_steps=3, eval_strategy="steps", eval_steps=3, use_cpu=True, disable_tqdm=True,
        report_to=kwargs.pop("report_to", "none"), **kwargs)
    cls = trainer_cls or transformers.Trainer
    return cls(model=_model(), args=args, train_dataset=Tokens(), eval_dataset=Tokens(), processing_class=_tokenizer())


def _only_run(client):
    mbx.flush(10)
    runs = client.runs()
    assert len(runs) == 1, [(r.name, r.tags) for r in runs]
    return runs[0]


def test_trainer_params_metrics_checkpoints_and_live_model(autologged, tmp_path):
    trainer = _trainer(tmp_path, learning_rate=1e-3)
    callbacks_before = list(trainer.callback_handler.callbacks)
    result = trainer.train()
    assert isinstance(result, transformers.trainer_utils.TrainOutput) and result.global_step == 6
    assert trainer.callback_handler.callbacks == callbacks_before  # ours removed again

    run = _only_run(autologged)
    assert run.name == "GPT2LMHeadModel" and run.status == "finished" and run.tags["framework"] == "transformers"
    params = run.params
    assert params["learning_rate"] == pytest.approx(1e-3) and params["max_steps"] == 6
    assert params["per_device_train_batch_size"] == 4
    assert params["model_config.n_layer"] == 2 and params["model_config.model_type"] == "gpt2"
    assert params["model.parameters"] == sum(p.numel() for p in trainer.model.parameters())
    assert params["hub_token"] == "<HUB_TOKEN>"  # redacted by Transformers itself

    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    losses = run.metrics("loss")
    assert [p.step for p in losses] == [e["step"] for e in history] == [2, 4, 6]
    assert [p.value for p in losses] == pytest.approx([e["loss"] for e in history])
    assert [p.step for p in run.metrics("eval_loss")] == [3, 6]
    assert {"learning_rate", "grad_norm", "train_runtime", "train_loss", "epoch"} <= set(run.metric_keys())

    saves = run.events("checkpoint_saved")
    assert [e.attrs["global_step"] for e in saves] == [3, 6]
    assert all(e.attrs["path"].endswith(f"checkpoint-{e.attrs['global_step']}") and e.attrs["bytes"] > 0 for e in saves)
    assert not [a for a in run.artifacts() if a.kind == "checkpoint"]  # the Trainer's torch.save files: not again

    (model_info,) = run.models()
    assert model_info.framework == "transformers"
    files = {f.name for f in model_info.files}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert model_info.metadata["class"].endswith(":GPT2LMHeadModel") and model_info.metadata["global_step"] == 6

    live = autologged.load_model(model_info.id)
    assert isinstance(live, transformers.GPT2LMHeadModel) and not live.training
    inputs = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(live(inputs).logits, trainer.model(inputs).logits, atol=1e-6)
    folder = autologged.download_model(model_info.id, tmp_path / "download")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer("w1 w2 w3")["input_ids"] == [1, 2, 3]


def test_report_to_tensorboard_is_not_logged_twice(autologged, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    trainer = _trainer(tmp_path, report_to=["tensorboard"])
    trainer.train()
    run = _only_run(autologged)
    keys = set(run.metric_keys())
    assert not any(k.startswith("train/") or k.startswith("eval/") for k in keys), keys  # TensorBoard's names
    assert len(run.metrics("loss")) == 3
    assert not run.events("tensorboard_text")  # the callback's args dump: ours are params already
    assert any(os.scandir(tmp_path / "tb"))  # TensorBoard still wrote its event files


def test_trainer_subclass_and_failing_train(autologged, tmp_path):
    class Failing(transformers.Trainer):
        def training_step(self, *args, **kwargs):
            if self.state.global_step == 2:
                raise RuntimeError("boom at step 2")
            return super().training_step(*args, **kwargs)

    trainer = _trainer(tmp_path, trainer_cls=Failing)
    with pytest.raises(RuntimeError, match="boom at step 2"):
        trainer.train()
    run = _only_run(autologged)
    assert run.status == "failed" and run.models() == []
    assert len(run.metrics("loss")) == 1  # step 2 was logged before the failure
