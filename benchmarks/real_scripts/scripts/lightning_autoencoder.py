# Source: the Lightning-AI/pytorch-lightning repository, README.md ("Hello simple model": the
# LitAutoEncoder), with the trainer.test step of the docs' "Lightning in 15 minutes" page.
# License: Apache-2.0, Copyright The Lightning AI team.
# Edits for an offline machine:
#  - torchvision's MNIST(os.getcwd(), download=True) -> a FakeData of MNIST's shape (1x28x28):
#    1,024 training and 256 test images;
#  - Trainer(max_epochs=2, enable_progress_bar=False) so that both runs print the same (the README
#    uses the defaults and a progress bar), seed_everything(0) added; a test_step added so that
#    there is a final number (test_loss), as the docs' page does.
import os
import torch
from torch import nn
import torch.nn.functional as F
from torchvision.datasets import FakeData
from torch.utils.data import DataLoader
import torchvision.transforms as transforms
import lightning as L

L.seed_everything(0)  # edit


# --------------------------------
# Step 1: Define a LightningModule
# --------------------------------
# A LightningModule (nn.Module subclass) defines a full *system*
# (ie: an LLM, diffusion model, autoencoder, or simple image classifier).


class LitAutoEncoder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 3))
        self.decoder = nn.Sequential(nn.Linear(3, 128), nn.ReLU(), nn.Linear(128, 28 * 28))

    def forward(self, x):
        # in lightning, forward defines the prediction/inference actions
        embedding = self.encoder(x)
        return embedding

    def training_step(self, batch, batch_idx):
        # training_step defines the train loop. It is independent of forward
        x, _ = batch
        x = x.view(x.size(0), -1)
        z = self.encoder(x)
        x_hat = self.decoder(z)
        loss = F.mse_loss(x_hat, x)
        self.log("train_loss", loss)
        return loss

    def test_step(self, batch, batch_idx):  # edit: from the docs' page
        x, _ = batch
        x = x.view(x.size(0), -1)
        z = self.encoder(x)
        x_hat = self.decoder(z)
        test_loss = F.mse_loss(x_hat, x)
        self.log("test_loss", test_loss)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        return optimizer


# -------------------
# Step 2: Define data
# -------------------
dataset = FakeData(1024, (1, 28, 28), 10, transform=transforms.ToTensor(), random_offset=0)  # edit
train, val = torch.utils.data.random_split(dataset, [896, 128])

# -------------------
# Step 3: Train
# -------------------
autoencoder = LitAutoEncoder()
trainer = L.Trainer(max_epochs=2, enable_progress_bar=False)  # edit
trainer.fit(autoencoder, DataLoader(train), DataLoader(val))
trainer.test(autoencoder, DataLoader(FakeData(256, (1, 28, 28), 10, transform=transforms.ToTensor(), random_offset=10_000)))
