"""Hugging Face Trainer workload: a 2-layer GPT-2 (n_embd 64) built from a config, 60 steps of
batch 8 x 32 synthetic tokens, a log every 10 steps, one evaluation, no checkpoints; autolog adds
the params, the logs and the final model (save_pretrained)."""

from __future__ import annotations

import os
import tempfile

DESCRIPTION = "transformers.Trainer: 2-layer GPT-2 from a config, 60 steps of 8 x 32 tokens, log every 10, final model"


def prepare():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    import transformers

    torch.set_num_threads(1)

    class Tokens(torch.utils.data.Dataset):
        def __len__(self):
            return 240

        def __getitem__(self, index):
            ids = torch.randint(0, 128, (32,), generator=torch.Generator().manual_seed(index))
            return {"input_ids": ids, "labels": ids}

    return torch, transformers, Tokens()


def train(state) -> None:
    torch, transformers, data = state
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    args = transformers.TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"), max_steps=60, per_device_train_batch_size=8,
        logging_steps=10, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=transformers.GPT2LMHeadModel(config), args=args, train_dataset=data)
    trainer.train()
    trainer.evaluate(data)
