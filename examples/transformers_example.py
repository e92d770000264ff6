"""Hugging Face ``Trainer``: a 2-layer GPT-2 built from a config (nothing downloaded), trained a
few steps on synthetic tokens with a tokenizer built locally. The training arguments, every log,
each checkpoint and the final model with its tokenizer are recorded; ``client.load_model`` gives
the model back, live."""

from __future__ import annotations

import os

REQUIRES = ("torch", "transformers", "accelerate", "tokenizers")


def main() -> None:
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(63)}
    vocab["[UNK]"] = 63
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[UNK]")

    class Tokens(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, index):
            ids = torch.randint(0, 64, (16,), generator=torch.Generator().manual_seed(index))
            return {"input_ids": ids, "labels": ids}

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=63)
    args = transformers.TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="transformers-example-"), max_steps=20, per_device_train_batch_size=8,
        logging_steps=5, save_steps=10, eval_strategy="steps", eval_steps=10, report_to="none", use_cpu=True,
        disable_tqdm=True)
    trainer = transformers.Trainer(model=transformers.GPT2LMHeadModel(config), args=args, train_dataset=Tokens(),
                                   eval_dataset=Tokens(), processing_class=tokenizer)
    result = trainer.train()
    print(f"Transformers Trainer: {result.global_step} steps, training loss {result.training_loss:.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
