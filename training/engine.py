"""Both training phases on the frozen backbone's cached features.

Phase 1 trains the head on pooled features (the whole backbone frozen): those are computed
once for every view, so an epoch costs a few milliseconds. Phase 2 trains the top of the
backbone and the head on the features at the cut (``training.model.split_model``). Each epoch
sees one view of every photo, drawn at random, so augmentation costs nothing per epoch.

Both phases use AdamW with a cosine decay to zero and label smoothing, and run their planned
number of epochs: on validation splits of a few hundred photos, picking an epoch by validation
loss mostly picks noise. Phase 2 instead averages the weights of its last epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from binbot.errors import counted
from training.callbacks import EpochLog, StopWhenAsked
from training.config import TrainConfig
from training.dataset import ImageRecord
from training.features import FeatureSpace, FeatureStore, weights_id
from training.forward import call_on_rows, compiled, predict_array
from training.model import ModelParts, set_top_trainable
from training.openset import OpenSet
from training.openset import fit as fit_open_set
from training.views import VIEWS_VERSION

Log = Callable[[str], None]


class FeatureTrainer:
    """Trains ``model`` (through ``parts``) on cached features of the training views."""

    def __init__(
        self,
        model: keras.Model,
        parts: ModelParts,
        config: TrainConfig,
        classes: int,
        class_weights: dict[int, float] | None,
        log: Log,
        on_event: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.model, self.parts, self.config, self.classes = model, parts, config, classes
        self.class_weights, self.log, self.on_event = class_weights, log, on_event
        self.rng = np.random.default_rng(config.seed)
        self.history: list[dict[str, Any]] = []
        self.embed = compiled(parts.embed)  # pooling runs four times: traced once

    def load_features(self, train: list[ImageRecord], val: list[ImageRecord]) -> None:
        """The cut's features for every training view and for the validation photos."""
        config = self.config
        weights = weights_id(config.weights)
        space = (
            FeatureSpace(config.backbone, weights, self.parts.cut, VIEWS_VERSION)
            if weights and config.cache_features
            else None
        )
        store = FeatureStore(space)
        self.log(f"Features below {self.parts.cut}: {len(train)} photos x {config.views} views")
        bottom = self.parts.bottom
        self.train_x = store.features(train, config.views, bottom, self.log, on_event=self.on_event)
        self.val_x = store.features(val, 1, bottom, self.log, on_event=self.on_event)[:, 0]
        self.train_y = keras.utils.to_categorical([r.label for r in train], self.classes)
        self.val_y = keras.utils.to_categorical([r.label for r in val], self.classes)

    def run_phase(self, phase: str, epochs: int, should_stop: Callable[[], bool] | None) -> None:
        config = self.config
        if phase == "head":
            set_top_trainable(self.parts, False)
            net, learning_rate = self.parts.head, config.head_learning_rate
            self.log("Pooling the frozen features of every view ...")
            inputs = self._pooled(self.train_x)
            val = (self._pooled(self.val_x[:, None])[:, 0], self.val_y)
            self.log(
                f"Training the head on the frozen {config.backbone} ({counted(epochs, 'epoch')})"
            )
        else:
            unfrozen = set_top_trainable(self.parts, True)
            net, learning_rate = self.parts.top, config.fine_tune_learning_rate
            inputs, val = self.train_x, (self.val_x, self.val_y)
            self.log(
                f"Fine-tuning the backbone above {self.parts.cut} ({unfrozen} layers with "
                f"weights) and the head ({counted(epochs, 'epoch')})"
            )
        steps = -(-len(inputs) // config.batch_size)
        warmup = min(config.fine_tune_warmup_epochs, epochs - 1) if phase == "fine-tune" else 0
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else learning_rate, (epochs - warmup) * steps,
            warmup_target=learning_rate if warmup else None, warmup_steps=warmup * steps,
        )  # fmt: skip
        net.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )
        callbacks: list[keras.callbacks.Callback] = [
            EpochLog(phase, epochs, self.history, self.log, self.on_event)
        ]
        if should_stop is not None:
            callbacks.append(StopWhenAsked(should_stop))
        guard = (
            DivergenceGuard(net, val, self.log) if phase == "fine-tune" and len(val[1]) else None
        )
        average = WeightAverage(net, config.average_last if phase == "fine-tune" else 1)
        for epoch in range(epochs):
            views = self.rng.integers(0, inputs.shape[1], len(inputs))
            net.fit(
                inputs[np.arange(len(inputs)), views].astype(np.float32), self.train_y,
                batch_size=config.batch_size, initial_epoch=epoch, epochs=epoch + 1,
                validation_data=val, class_weight=self.class_weights, callbacks=callbacks,
                shuffle=True, verbose=0,
            )  # fmt: skip
            if epoch >= epochs - average.last:
                average.add()
        average.apply(self.log)
        if guard is not None:
            guard.check()

    def validation_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """The validation photos' embeddings and probabilities under the model as it is kept:
        averaged over the last epochs, or put back by the divergence guard, it is a model no
        epoch's figures describe."""
        embeddings = self._pooled(self.val_x[:, None])[:, 0]
        return embeddings, predict_array(self.parts.head, embeddings, batch_size=256)

    def kept_scores(self, probabilities: np.ndarray) -> dict[str, float]:
        """Validation top-1 and loss (with the training's label smoothing, as each epoch's)
        of the kept model, from its validation probabilities."""
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing)
        return {
            "val_accuracy": float(np.mean(probabilities.argmax(1) == self.val_y.argmax(1))),
            "val_loss": float(loss(self.val_y, probabilities)),
        }

    def open_set(
        self, train_labels: np.ndarray, val_embeddings: np.ndarray, val_probabilities: np.ndarray
    ) -> OpenSet:
        """The trained model's open-set score: fitted on the training photos (their exact
        view), its threshold calibrated on the validation photos."""
        train = self._pooled(self.train_x[:, :1])[:, 0]
        scorer = fit_open_set(self.config.openset_method, train, train_labels, self.config.seed)
        scorer.calibrate(val_embeddings, val_probabilities)
        return scorer

    def _pooled(self, features: np.ndarray) -> np.ndarray:
        """Pooled features [n, views, 1280] of cut features [n, views, ...], frozen top."""
        flat = features.reshape(-1, *features.shape[2:])
        pooled = call_on_rows(self.embed, flat)
        return pooled.reshape(features.shape[0], features.shape[1], -1).astype(np.float32)


class DivergenceGuard:
    """Keeps the weights from before fine-tuning when it left the model worse on validation.

    Why: a learning rate too high for a dataset knocks the pretrained layers about, and the
    run ends with a model that answers one class for everything (``--fine-tune-lr 1e-3``:
    validation top-1 10% on e-waste, 4% on grocery, after 96% and 88% from the head alone).
    The head-only model is then the better one, and the user is told why they got it. Worse
    means both lower accuracy and higher loss, so validation noise alone does not undo a
    fine-tuning.
    """

    def __init__(self, net: keras.Model, val: tuple[np.ndarray, np.ndarray], log: Log) -> None:
        self.net, self.val, self.log = net, val, log
        self.weights = [np.asarray(w) for w in net.weights]
        self.before = self._scores()

    def _scores(self) -> tuple[float, float]:
        scores = self.net.evaluate(*self.val, batch_size=64, verbose=0, return_dict=True)
        return float(scores["accuracy"]), float(scores["loss"])

    def check(self) -> None:
        (accuracy, loss), (old_accuracy, old_loss) = self._scores(), self.before
        if not (accuracy < old_accuracy and (loss > old_loss or not np.isfinite(loss))):
            return
        for weight, value in zip(self.net.weights, self.weights, strict=True):
            weight.assign(value)
        self.log(
            f"WARNING: fine-tuning left the model worse on validation (top-1 {old_accuracy:.1%}"
            f" -> {accuracy:.1%}, loss {old_loss:.3f} -> {loss:.3f}): kept the weights from"
            " before it; a lower --fine-tune-lr, or --fine-tune-warmup, may let it help"
        )


class WeightAverage:
    """The mean of a model's trainable weights over its last few epochs (1: the last only)."""

    def __init__(self, net: keras.Model, last: int) -> None:
        self.net, self.last = net, last
        self.sums: list[np.ndarray] | None = None
        self.count = 0

    def add(self) -> None:
        values = [np.asarray(w) for w in self.net.trainable_weights]
        self.sums = (
            values if self.sums is None else [s + v for s, v in zip(self.sums, values, strict=True)]
        )
        self.count += 1

    def apply(self, log: Log) -> None:
        if self.count > 1:
            for weight, total in zip(self.net.trainable_weights, self.sums, strict=True):
                weight.assign(total / self.count)
            log(f"  kept the average of the last {self.count} epochs' weights")
