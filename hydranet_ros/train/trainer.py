"""The training loop: step-based, checkpointed, resumable, single process or torchrun/DDP.

A run lives in ``config.out_dir``: ``checkpoints/`` (see checkpointing.py), ``train_log.csv``,
``val_log.csv``, ``loss_curves.png``, ``config.yaml`` (as resolved), and at the end
``model.safetensors`` plus ``eval.json`` and its plots.

Multi-GPU / multi-node: launch the same command with torchrun, e.g.
``torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500
-m hydranet_ros.commands.train --config ...``. Batch size is per process; only rank 0 writes
files. Every rank reads the checkpoint when resuming, so ``out_dir`` must be on a filesystem all
nodes share.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hydranet_ros.errors import HydraNetError
from hydranet_ros.io import staging
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.presets import Preset, get_preset
from hydranet_ros.runtime.network_input import normalise_images
from hydranet_ros.train import checkpointing
from hydranet_ros.train.config import ConfigError, TrainConfig
from hydranet_ros.train.data import (
    AugmentedDataset,
    CanonicalDepth,
    Collate,
    ShuffledSampler,
    SizeBuckets,
    SkipFirst,
    WeightedEpochSampler,
    build_augmenter,
    build_dataset,
    label_histograms,
    pixel_budget_batches,
)
from hydranet_ros.train.distributed import init_from_env
from hydranet_ros.train.evaluate import EvaluationResult, evaluate_model, write_report
from hydranet_ros.train.logs import CsvLog, draw_curves
from hydranet_ros.train.losses import MultiTaskLoss, make_weighting, valid_depth_mask
from hydranet_ros.train.optim import apply_lr, build_optimizer, lr_factor

LOG = logging.getLogger(__name__)


class TrainingError(HydraNetError, RuntimeError):
    """Training cannot go on (diverged, or the data is unusable); ``reason`` is a short key."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TrainStep(nn.Module):
    """Network + loss in one module, so DistributedDataParallel also averages the gradients of
    the learned task weights (they live in the loss, not in the network)."""

    def __init__(self, *, model: HydraNet, criterion: MultiTaskLoss, preset: Preset, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.mean, self.std = preset.mean, preset.std
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = normalise_images(batch["image"], mean=self.mean, std=self.std)
        outputs = self.model(images.contiguous(memory_format=self.memory_format))
        with torch.autocast(device_type=batch["image"].device.type, enabled=False):
            return self.criterion({k: v.float() for k, v in outputs.items()}, batch)


@dataclass
class TrainSummary:
    steps: int
    resumed_from: int | None
    final_loss: float
    seconds: float
    images_per_s: float
    weights: Path | None
    evaluation: EvaluationResult | None


def preset_for(config: TrainConfig) -> Preset:
    """The preset named in the config, with a normals head when normals are trained."""
    try:
        preset = get_preset(config.preset)
    except ValueError as error:
        raise ConfigError(str(error), reason="bad_preset") from None
    if "normals" in config.tasks and not preset.with_normals:
        preset = dataclasses.replace(preset, name=f"{preset.name}_normals", with_normals=True)
    return preset


class Trainer:
    """Train a HydraNet as ``config`` says. Datasets may be passed in (tests, the affinity study);
    otherwise they are built from ``config.data``."""

    def __init__(self, *, config: TrainConfig, train_dataset: Dataset | None = None,
                 val_dataset: Dataset | None = None, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.dist, self.device = init_from_env(config.device)
        self.preset = preset_for(config)
        self.out_dir = Path(config.out_dir)
        torch.manual_seed(config.seed)
        raw_train = train_dataset if train_dataset is not None else build_dataset(config.data.train)
        base_train = self._canonical(raw_train)
        if len(base_train) < config.data.batch_size * self.dist.world_size:
            raise TrainingError(f"training set has {len(base_train)} frames, fewer than one batch", reason="tiny_dataset")
        self.size_buckets = self._size_buckets(raw_train)  # refuses what it cannot combine with, first
        self.class_weights = self._class_weights(base_train)
        self.sample_weights = self._sample_weights(base_train)
        self.train_dataset = self._augmented(base_train)
        if self.size_buckets is not None:  # the first size is the trained input size
            self.input_hw = raw_train.sizes[0][::-1]
        else:
            self.input_hw = tuple(np.asarray(self.train_dataset[0]["image"]).shape[:2])
        if val_dataset is None and config.data.val is not None:
            val_dataset = self._canonical(_one_size_for_evaluation(build_dataset(config.data.val)))
        self.val_dataset = _one_size_for_evaluation(val_dataset)
        self.model = HydraNet(self.preset).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        weighting = make_weighting(kind=config.loss.weighting, tasks=config.tasks, weights=config.loss.weights)
        criterion = MultiTaskLoss(tasks=config.tasks, weighting=weighting, depth_kind=config.loss.depth,
                                  silog_lambda=config.loss.silog_lambda, class_weights=self.class_weights)
        self.step_module = TrainStep(model=self.model, criterion=criterion, preset=self.preset,
                                     channels_last=config.channels_last).to(self.device)
        self.optimizer = build_optimizer(model=self.model, weighting=weighting, config=config.optim)
        self.use_amp = config.optim.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.checkpoints = checkpointing.CheckpointStore(folder=self.out_dir / "checkpoints",
                                                         keep=config.keep_checkpoints)
        self.train_log = CsvLog(path=self.out_dir / "train_log.csv")
        self.val_log = CsvLog(path=self.out_dir / "val_log.csv")

    # --- set-up helpers -------------------------------------------------------------------------

    def _canonical(self, dataset: Dataset) -> Dataset:
        focal = self.config.data.canonical_focal_px
        return dataset if focal is None else CanonicalDepth(dataset, focal_px=focal)

    def _augmented(self, dataset: Dataset) -> Dataset:
        if not self.config.data.augment:
            return dataset
        return AugmentedDataset(dataset, augment=build_augmenter(self.config.data.augment), seed=self.config.seed)

    def _size_buckets(self, dataset: Dataset) -> tuple[Any, dict[tuple[int, int], int]] | None:
        """(size_of, frames per batch of each size) for a dataset of several frame sizes, else None.
        Refuses what several sizes do not combine with before any frame is read."""
        sizes = getattr(dataset, "sizes", None)
        if sizes is None or len(sizes) < 2:
            return None
        data = self.config.data
        if data.balanced_sampling or self.dist.enabled:
            raise ConfigError("frames of several sizes (sizes) are batched from plain shuffled sampling only: "
                              "not with data.balanced_sampling or with several processes", reason="bad_dataset")
        if (data.augment or {}).get("crop_size") is not None:
            raise ConfigError("data.augment.crop_size would crop frames of every size to one size: "
                              "use sizes or crop_size, not both", reason="bad_dataset")
        batch_for = pixel_budget_batches(sizes, data.batch_size)
        counts = collections.Counter(dataset.size_of(index) for index in range(len(dataset)))
        for size, batch in batch_for.items():
            if counts[size] < batch:  # such a size would never make a batch: never trained
                raise TrainingError(f"{size[0]}x{size[1]}: {counts[size]} frames, fewer than its batch of {batch}",
                                    reason="tiny_dataset")
        LOG.info("frames of several sizes, one size per batch: %s",
                 ", ".join(f"{w}x{h}: {b} a batch" for (w, h), b in batch_for.items()))
        return dataset.size_of, batch_for

    def _class_weights(self, dataset: Dataset) -> torch.Tensor | None:
        spec = self.config.loss.class_weights
        if spec is None or "segm" not in self.config.tasks:
            return None
        if isinstance(spec, list):
            if len(spec) != self.preset.num_classes:
                raise ConfigError(f"loss.class_weights has {len(spec)} entries for {self.preset.num_classes} classes")
            return torch.tensor(spec, dtype=torch.float32)
        from hydranet_ros.train.augment import median_frequency_weights

        histograms = label_histograms(dataset, num_classes=self.preset.num_classes,
                                      frames=self.config.loss.class_weight_frames)
        try:
            weights = median_frequency_weights(histograms).astype(np.float32)
        except ValueError as error:
            raise TrainingError(f"median-frequency weights: {error}", reason="no_labels") from None
        LOG.info("median-frequency class weights: %s",
                 ", ".join(f"{n}={w:.3f}" for n, w in zip(self.preset.class_names, weights, strict=True)))
        return torch.from_numpy(weights)

    def _sample_weights(self, dataset: Dataset) -> np.ndarray | None:
        if not self.config.data.balanced_sampling:
            return None
        from hydranet_ros.train.augment import balanced_sample_weights

        LOG.info("class-balanced sampling: reading the labels of all %d training frames", len(dataset))
        histograms = label_histograms(dataset, num_classes=self.preset.num_classes)
        return balanced_sample_weights(histograms, power=self.config.data.balanced_sampling_power)

    def _initialise_fresh(self) -> None:
        model_cfg = self.config.model
        if model_cfg.init_weights:
            state, _ = checkpointing.load_model_weights(model_cfg.init_weights)
            checkpointing.load_into(self.model, state, source=model_cfg.init_weights)
            LOG.info("initialised the whole network from %s", model_cfg.init_weights)
            return
        if model_cfg.init_encoder:
            count = checkpointing.init_encoder_from_published(self.model, model_cfg.init_encoder)
            LOG.info("initialised the encoder from %s (%d tensors)", model_cfg.init_encoder, count)
        bias = model_cfg.depth_bias_init_m
        if bias is not None and "depth" in self.config.tasks:
            if bias == "auto":
                bias = self._median_depth(frames=16)
            if bias is not None:
                with torch.no_grad():
                    self.model.heads["depth"].out.bias.fill_(float(bias))
                LOG.info("depth head bias starts at %.2f m", bias)

    def _median_depth(self, *, frames: int) -> float | None:
        """Median valid depth of the first training frames: the same on every DDP rank."""
        values = []
        for index in range(min(frames, len(self.train_dataset))):
            depth = self.train_dataset[index].get("depth_m")
            if depth is not None:
                depth = torch.as_tensor(np.asarray(depth, np.float32))
                values.append(depth[valid_depth_mask(depth)])
        merged = torch.cat(values) if values else torch.empty(0)
        return float(merged.median()) if merged.numel() else None

    def _loader(self, *, epoch: int, skip_batches: int) -> DataLoader:
        cfg = self.config
        if self.sample_weights is not None:
            base = WeightedEpochSampler(self.sample_weights, seed=cfg.seed, rank=self.dist.rank,
                                        world_size=self.dist.world_size)
        elif self.dist.enabled:
            base = DistributedSampler(self.train_dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                      shuffle=True, seed=cfg.seed, drop_last=True)
        else:
            base = ShuffledSampler(len(self.train_dataset), seed=cfg.seed)
        base.set_epoch(epoch)
        collate = Collate(with_normals="normals" in cfg.tasks)
        if self.size_buckets is not None:
            size_of, batch_for = self.size_buckets
            batches = SizeBuckets(base, size_of=size_of, batch_for=batch_for, skip_batches=skip_batches)
            return DataLoader(self.train_dataset, batch_sampler=batches, num_workers=cfg.data.num_workers,
                              collate_fn=collate, pin_memory=self.device.type == "cuda", persistent_workers=False)
        sampler = SkipFirst(base, skip=skip_batches * cfg.data.batch_size)
        return DataLoader(self.train_dataset, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                          num_workers=cfg.data.num_workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def steps_per_epoch(self) -> int:
        if self.size_buckets is not None:
            size_of, batch_for = self.size_buckets
            batches = SizeBuckets(ShuffledSampler(len(self.train_dataset), seed=0), size_of=size_of, batch_for=batch_for)
            return max(len(batches), 1)
        per_rank = len(self.train_dataset) // self.dist.world_size
        return max(per_rank // self.config.data.batch_size, 1)

    # --- checkpoints ----------------------------------------------------------------------------

    def _metadata(self, step: int) -> dict[str, str]:
        # The input size matters at inference: metric depth is learned from apparent size in
        # pixels, so the network should see frames at the resolution (focal length) it trained on.
        height, width = self.input_hw
        metadata = {"tasks": ",".join(self.config.tasks), "config_name": self.config.name, "step": str(step),
                    "input_size": f"{width}x{height}"}
        if self.config.data.canonical_focal_px is not None:
            # The camera metric depth was learned for (runtime/focal.py scales depth by it).
            metadata["focal_px"] = repr(float(self.config.data.canonical_focal_px))
        return metadata

    def save_checkpoint(self, step: int) -> None:
        if not self.dist.is_main:
            return
        training_state = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "weighting": self.step_module.criterion.weighting.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": _plain(self.config.to_dict()),
        }
        self.checkpoints.save(step=step, model_state=self.model.state_dict(), training_state=training_state,
                              preset=self.preset, metadata=self._metadata(step))

    def try_resume(self) -> int | None:
        """Load the newest checkpoint if there is one; returns its step."""
        found = self.checkpoints.latest()
        if found is None:
            return None
        weights_path, state_path, step = found
        state, _ = checkpointing.load_model_weights(weights_path)
        checkpointing.load_into(self.model, state, source=str(weights_path))
        training = checkpointing.load_training_state(state_path)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scaler.load_state_dict(training["scaler"])
        self.step_module.criterion.weighting.load_state_dict(training["weighting"])
        torch.set_rng_state(training["torch_rng"])
        if training.get("config") != _plain(self.config.to_dict()):
            LOG.warning("resuming %s with a configuration that differs from the checkpoint's", weights_path)
        return step

    def _resume(self) -> int | None:
        """Resume from the newest complete checkpoint, saying which; without one, start from step 0,
        saying so when an earlier run left traces (log rows, an interrupted first checkpoint), whose
        log rows are dropped so that no step is logged twice."""
        removed: list[str] = []
        if self.dist.is_main:
            removed = self.checkpoints.discard_incomplete()
            if removed:
                LOG.warning("removed what an interrupted checkpoint left in %s: %s", self.checkpoints.folder,
                            ", ".join(removed))
        self.dist.barrier()
        start = self.try_resume()
        if self.dist.is_main:
            if start is not None:
                LOG.info("resuming from step %d: %s", start, self.checkpoints.latest()[0])
            elif removed or self.train_log.read() or self.val_log.read():
                LOG.warning("no complete checkpoint in %s: starting from step 0 (the earlier run stopped before its "
                            "first checkpoint; its log rows are dropped)", self.checkpoints.folder)
            for log in (self.train_log, self.val_log):
                log.truncate_after(start or 0)
        self.dist.barrier()
        return start

    def _clear_previous_run(self) -> None:
        """--restart: old checkpoints and log rows would otherwise mix with the new run's."""
        self.dist.barrier()
        if self.dist.is_main:
            import shutil

            if self.checkpoints.folder.is_dir():
                LOG.warning("restart: removing the previous run's checkpoints in %s", self.checkpoints.folder)
                shutil.rmtree(self.checkpoints.folder)
            for log in (self.train_log, self.val_log):
                log.path.unlink(missing_ok=True)
                log.columns = None
        self.dist.barrier()

    # --- the loop -------------------------------------------------------------------------------

    def run(self, *, resume: bool = True) -> TrainSummary:
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            staging.write_atomic(self.out_dir / "config.yaml",
                                 yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False).encode())
        if not resume:
            self._clear_previous_run()
        start = self._resume() if resume else None
        step = start or 0
        if start is None:
            self._initialise_fresh()
        module: nn.Module = self.step_module
        if self.dist.enabled:
            module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=set(cfg.tasks) != set(self.model.heads))
        module.train()
        total_steps = cfg.schedule.steps
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=total_steps, initial=step, desc=cfg.name, unit="step", dynamic_ncols=True)
        started = time.perf_counter()
        images_seen, loss_value, window = 0, math.nan, _Window()
        spe = self.steps_per_epoch()
        try:
            while step < total_steps:
                epoch, skip = divmod(step, spe)
                before = step
                for batch in self._loader(epoch=epoch, skip_batches=skip):
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                    loss_value, parts = self._train_step(module, batch, step)
                    step += 1
                    images_seen += batch["image"].shape[0] * self.dist.world_size
                    window.add(loss_value, parts)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss_value:.4f}")
                    self._after_step(step, window, images_seen, started)
                    if step >= total_steps:
                        break
                if step == before:  # an epoch without a batch would loop here for ever
                    raise TrainingError(f"epoch {epoch} gave no batch from step {step}", reason="tiny_dataset")
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        evaluation, weights = None, None
        if self.dist.is_main:
            weights = checkpointing.save_model_weights(self.out_dir / "model.safetensors", self.model.state_dict(),
                                                       preset=self.preset, metadata=self._metadata(step))
            if self.val_dataset is not None:
                evaluation = self.evaluate()
                write_report(evaluation, self.out_dir, prefix="eval")
        self.dist.barrier()
        return TrainSummary(steps=step, resumed_from=start, final_loss=loss_value, seconds=seconds,
                            images_per_s=images_seen / seconds if seconds > 0 else math.nan,
                            weights=weights, evaluation=evaluation)

    def _train_step(self, module: nn.Module, batch: dict[str, torch.Tensor], step: int) -> tuple[float, dict]:
        apply_lr(self.optimizer, lr_factor(step, self.config.schedule))
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            total, parts = module(batch)
        if not torch.isfinite(total):
            raise TrainingError(f"loss became {float(total)} at step {step} (parts: "
                                f"{ {k: float(v) for k, v in parts.items()} }); lower the learning rates",
                                reason="diverged")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.config.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.step_module.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(total.detach()), {k: float(v.detach()) for k, v in parts.items()}

    def _after_step(self, step: int, window: "_Window", images_seen: int, started: float) -> None:
        cfg = self.config
        if step % cfg.log_every == 0 or step == cfg.schedule.steps:
            loss, parts = window.mean()
            loss = self.dist.all_reduce_mean(loss)
            window.clear()
            if self.dist.is_main:
                elapsed = time.perf_counter() - started
                row: dict[str, Any] = {"step": step, "loss": loss}
                row.update({f"loss_{t}": parts.get(t, math.nan) for t in cfg.tasks})
                row.update(self.step_module.criterion.weighting.describe())
                row.update({f"lr_{g['name']}": g["lr"] for g in self.optimizer.param_groups})
                row["images_per_s"] = images_seen / elapsed if elapsed > 0 else math.nan
                self.train_log.append(row)
        if cfg.eval_every and step % cfg.eval_every == 0 and step != cfg.schedule.steps and self.val_dataset:
            if self.dist.is_main:
                self.val_log.append({"step": step, **self.evaluate().summary()})
            self.dist.barrier()
        if step % cfg.checkpoint_every == 0 or step == cfg.schedule.steps:
            self.save_checkpoint(step)
            if self.dist.is_main:
                self.draw_curves()
            self.dist.barrier()

    def evaluate(self) -> EvaluationResult:
        if self.val_dataset is None:
            raise TrainingError("no validation set configured (data.val)", reason="no_val")
        result = evaluate_model(self.model, self.val_dataset, preset=self.preset, tasks=self.config.tasks,
                                device=self.device, batch_size=self.config.data.batch_size,
                                max_frames=self.config.eval_max_frames, depth_max_m=self.config.depth_eval_max_m)
        result.extra["step_config"] = self.config.name
        return result

    def draw_curves(self) -> Path | None:
        rows = self.train_log.read()
        if not rows:
            return None
        steps = [r["step"] for r in rows]
        series = {"total": (steps, [r["loss"] for r in rows])}
        for task in self.config.tasks:
            series[task] = (steps, [r.get(f"loss_{task}", math.nan) for r in rows])
        return draw_curves(series, self.out_dir / "loss_curves.png", title=f"{self.config.name}: training loss")


class _Window:
    """Running mean of the losses since the last log line."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.total, self.parts, self.count = 0.0, {}, 0

    def add(self, loss: float, parts: dict[str, float]) -> None:
        self.total += loss
        self.count += 1
        for k, v in parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v

    def mean(self) -> tuple[float, dict[str, float]]:
        n = max(self.count, 1)
        return self.total / n, {k: v / n for k, v in self.parts.items()}


def _one_size_for_evaluation(dataset: Dataset | None) -> Dataset | None:
    """``dataset``, refused if its frames have several sizes: evaluation batches them as they come."""
    if len(getattr(dataset, "sizes", ())) > 1:
        raise ConfigError("data.val: frames of several sizes (sizes) cannot be evaluated in batches; "
                          "give the validation set one size", reason="bad_dataset")
    return dataset


def _plain(value: Any) -> Any:
    """Config as YAML/pickle-safe plain containers (tuples -> lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def train(config: TrainConfig, *, resume: bool = True, progress: bool = True) -> TrainSummary:
    """Build the trainer from the config alone and run it (the CLI's entry point)."""
    trainer = Trainer(config=config, progress=progress)
    try:
        return trainer.run(resume=resume)
    finally:
        trainer.dist.shutdown()
