# Source: the huggingface/transformers repository, docs/source/en/training.md ("Fine-tuning",
# the Trainer section: a sequence classifier, TrainingArguments with eval each epoch,
# compute_metrics with accuracy, trainer.train()).
# License: Apache-2.0, Copyright The HuggingFace Team.
# Edits for an offline machine:
#  - AutoModelForSequenceClassification.from_pretrained("google-bert/bert-base-cased") ->
#    BertForSequenceClassification(BertConfig(...)) of 2 tiny layers (no download);
#  - load_dataset("yelp_review_full") + tokenizer.map -> seeded random token ids with the
#    columns the tokenizer would make (input_ids, token_type_ids, attention_mask, labels),
#    512 training and 128 evaluation rows of 32 tokens, 5 labels as Yelp's;
#  - the evaluate library's "accuracy" -> numpy (the same formula, no download);
#  - num_train_epochs 3 -> 2, per-device batch 16, report_to="none" and disable_tqdm=True (so both runs
#    print the same); the final trainer.evaluate() print added.
import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments, set_seed

set_seed(0)


class Rows(torch.utils.data.Dataset):  # edit: stands for the tokenized dataset
    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.ids = rng.integers(5, 1000, (n, 32))
        self.labels = rng.integers(0, 5, n)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(self.ids[i]), "token_type_ids": torch.zeros(32, dtype=torch.long),
                "attention_mask": torch.ones(32, dtype=torch.long), "labels": int(self.labels[i])}


small_train_dataset = Rows(512, 0)
small_eval_dataset = Rows(128, 1)

model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2,
                                                 num_attention_heads=2, intermediate_size=64, num_labels=5))  # edit


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    # convert the logits to their predicted class
    predictions = np.argmax(logits, axis=-1)
    return {"accuracy": float((predictions == labels).mean())}  # edit: evaluate's accuracy


training_args = TrainingArguments(
    output_dir="yelp_review_classifier",
    eval_strategy="epoch",
    num_train_epochs=2,
    per_device_train_batch_size=16,
    report_to="none",
    disable_tqdm=True,
)

trainer = Trainer(
    model=model,
    args=training_args,
    train_dataset=small_train_dataset,
    eval_dataset=small_eval_dataset,
    compute_metrics=compute_metrics,
)
trainer.train()
print(trainer.evaluate())  # edit
