"""Grad-CAM heatmaps point at the finding: a findings model trained briefly on synthetic phantoms
shows a lung mass where the generator drew it.

The generator knows the region: the same patient is rendered with and without the mass (same
seed, same noise), and the pixels that differ are the mass. Training pairs the two renderings of
each patient, so the only thing that tells the labels apart is the mass itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.findings.classifier import FindingsClassifier
from xrg.data.studies import ImagePreparation
from xrg.data.synthetic.anatomy import sample_patient
from xrg.data.synthetic.findings import Findings, Lesion
from xrg.data.synthetic.phantom import render_views
from xrg.tasks.findings import FindingsClassification

SIZE = 96
CELL = 16  # the encoder's feature-map stride (output_stride 16): one heatmap cell is 16 px


def render(seed: int, with_mass: bool) -> np.ndarray:
    """One frontal view of patient `seed`, with or without a 4.5-6 cm mass at a random place."""
    rng = np.random.default_rng(seed)
    patient = sample_patient(rng)
    place = np.random.default_rng(seed + 10_000)
    mass = Lesion("mass", ("right", "left")[place.integers(2)], ("upper", "middle", "lower")[place.integers(3)],
                  float(place.uniform(4.5, 6.0)), float(place.uniform(0.3, 0.7)), float(place.uniform(0.2, 0.8)), 0.5)
    return render_views(patient, Findings(lesion=mass if with_mass else None), SIZE, 1, rng)[0]


@pytest.fixture(scope="module")
def trained(one_thread_module):
    torch.manual_seed(0)
    preparation = ImagePreparation(image_size=SIZE, mean=(0.5,) * 3, std=(0.25,) * 3, max_views=1)
    images, labels = [], []
    for seed in range(80):
        for with_mass in (True, False):
            images.append(preparation.views([Image.fromarray(render(seed, with_mass))], str(seed)))
            labels.append([float(with_mass)])
    images, labels = torch.stack(images), torch.tensor(labels)
    task = FindingsClassification(TimmImageEncoder("test_resnet", model_kwargs={"output_stride": 16}),
                                  FindingsClassifier(label_names=["Lung Lesion"]), fit_pos_weight=False)
    # 20 epochs with the rate decayed to 0: at a constant rate (10 epochs) where the heat peaked
    # depended on the last few steps, and on another CPU's rounding it peaked off the mass for 2 of
    # 16 unseen patients; decayed, it lies within 1.25 cells of every one for 4 torch seeds.
    epochs, batch_size = 20, 16
    optimizer = torch.optim.Adam(task.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * math.ceil(len(images) / batch_size))
    task.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).split(batch_size):
            loss = task.findings.loss(task.findings(task.image_encoder(images[batch])), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    task.preparation = preparation
    return task.eval()


@pytest.fixture(scope="module")
def one_thread_module():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_heatmap_peaks_on_the_mass_the_generator_drew(trained):
    detected = 0
    for seed in range(1000, 1008):  # patients and masses never seen in training
        with_mass, without = render(seed, True), render(seed, False)
        drawn = np.abs(with_mass.astype(float) - without.astype(float))
        region = drawn > 0.3 * drawn.max()
        report = trained.report(Image.fromarray(with_mass), explain=["Lung Lesion"])
        # The mass is what the classifier reads: the same patient scores higher with it than without.
        assert report.findings["Lung Lesion"] > trained.report(Image.fromarray(without)).findings["Lung Lesion"], seed
        detected += report.present == ["Lung Lesion"]
        heat = report.heatmaps["Lung Lesion"][0]
        assert heat.shape == (SIZE, SIZE)
        peak = np.unravel_index(heat.argmax(), heat.shape)
        centre = np.argwhere(region).mean(0)
        assert np.hypot(*(np.array(peak) - centre)) <= 1.5 * CELL, (seed, peak, centre)
        assert heat[region].mean() > 2.5 * heat.mean(), seed  # the heat sits on the drawn mass
    # 160 training images make a detector that is not perfect on unseen patients (each of the 8 over
    # 0.5 for 4 torch seeds, the lowest 0.53); the heatmap is asked for either way.
    assert detected >= 6, detected


def test_explain_names_only_scored_findings(trained):
    with pytest.raises(ValueError, match="scores \\['Lung Lesion'\\]"):
        trained.report(Image.fromarray(render(0, True)), explain=["Pneumothorax"])
